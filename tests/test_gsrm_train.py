"""`rlkd-lite gsrm train`: the GSRM recipe, held-out split, rows and metrics; then a short real
run on a tiny model whose adapter loads in `score --decomposer gsrm` and beside the student."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rlkd_lite.cli import app
from rlkd_lite.data.problems import load_problems
from rlkd_lite.data.resumable import ResumableOutput
from rlkd_lite.errors import InputError, RlkdError
from rlkd_lite.structure.steps import Step, parse_steps, render_steps
from rlkd_lite.train.config import load_config
from rlkd_lite.train.gsrm import (LabelExample, evaluate_decompositions, gsrm_sft_rows,
                                  label_with_rules, load_gsrm_config, split_held_out)

TEST_RECIPE = str(Path(__file__).parent / "recipes" / "gsrm-tiny-test.yaml")
STUDENT_TEST_RECIPE = str(Path(__file__).parent / "recipes" / "tiny-test.yaml")
SHAPE = ("model", "backend", "load_in_4bit", "lora_rank", "lora_alpha", "lora_dropout",
         "lora_target_modules")
"""What the gsrm adapter must share with the student for `train --gsrm-adapter` to load it."""


def examples(n: int) -> list[LabelExample]:
    return [LabelExample(str(i), f"Q{i}?", f"r{i}", [Step("m", "q", str(i))], "test")
            for i in range(n)]


@pytest.mark.parametrize(("gsrm_recipe", "student_recipe"), [
    ("gsrm-qwen2.5-1.5b", "rlkd-qwen2.5-1.5b-gsm8k"), ("gsrm-tiny-cpu", "tiny-cpu"),
    (TEST_RECIPE, STUDENT_TEST_RECIPE)])
def test_gsrm_recipes_share_the_students_shape(gsrm_recipe, student_recipe):
    gsrm, student = load_gsrm_config(gsrm_recipe), load_config(student_recipe)
    assert {k: getattr(gsrm, k) for k in SHAPE} == {k: getattr(student, k) for k in SHAPE}
    assert 0 < gsrm.held_out < 1 and gsrm.output_dir != student.output_dir


def test_gsrm_recipe_fields_are_checked():
    with pytest.raises(RlkdError, match="held_out must be between 0 and 1"):
        load_gsrm_config("gsrm-tiny-cpu", {"held_out": 1.5})
    with pytest.raises(InputError, match="expected float"):
        load_gsrm_config("gsrm-tiny-cpu", {"held_out": "a lot"})
    with pytest.raises(InputError, match="unknown field"):  # a GSRM field is not a run field
        load_config("gsrm-tiny-cpu")


def test_held_out_split_is_seeded_disjoint_and_never_empty():
    train, held = split_held_out(examples(20), 0.25, seed=0)
    assert len(held) == 5 and len(train) == 15
    assert {e.id for e in train}.isdisjoint(e.id for e in held)
    assert [e.id for e in held] == sorted((e.id for e in held), key=int)  # file order kept
    assert split_held_out(examples(20), 0.25, seed=0) == (train, held)
    assert split_held_out(examples(20), 0.25, seed=1) != (train, held)
    assert [len(part) for part in split_held_out(examples(3), 0.01, seed=0)] == [2, 1]
    assert [len(part) for part in split_held_out(examples(3), 0.99, seed=0)] == [1, 2]
    with pytest.raises(RlkdError, match="at least 2"):
        split_held_out(examples(1), 0.5, seed=0)


def test_rows_are_the_decomposers_zero_shot_prompt_and_the_tagged_steps():
    from rlkd_lite.structure.llm import decomposition_messages

    example = LabelExample("x", "How many?", "2+3 = 5", [Step("Add them.", "2+3", "5")], "t")
    (row,) = gsrm_sft_rows([example])
    assert row["prompt"] == decomposition_messages("How many?", "2+3 = 5", few_shot=False)
    assert row["completion"] == [{"role": "assistant", "content": render_steps(example.steps)}]
    assert parse_steps(row["completion"][0]["content"]) == example.steps


def test_evaluation_metrics():
    a, b, c = Step("ma", "qa", "1"), Step("mb", "qb", "2"), Step("mc", "qc", "3")
    labels = [[a, b], [a, b, c], [a]]
    predicted = [[a, b], [a, Step("mb", "other", "2")], []]
    metrics = evaluate_decompositions(labels, predicted)
    assert metrics["examples"] == 3
    assert metrics["parse_rate"] == pytest.approx(2 / 3)
    assert metrics["step_count_agreement"] == pytest.approx(1 / 3)
    assert metrics["mean_structure_reward"] == pytest.approx((2 + 1.5 + 0) / 3)
    assert metrics["mean_structure_reward_normalized"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert metrics["mean_label_steps"] == 2
    assert metrics["mean_predicted_steps"] == pytest.approx(4 / 3)
    with pytest.raises(ValueError):
        evaluate_decompositions(labels, predicted[:2])


def test_train_needs_examples(tmp_path):
    result = CliRunner().invoke(app, ["gsrm", "train", "--recipe", TEST_RECIPE,
                                      "--output-dir", str(tmp_path / "run")])
    assert result.exit_code == 1 and "--examples" in result.output


def test_train_dry_run_prints_the_resolved_recipe(tmp_path):
    labels = tmp_path / "labels.jsonl"
    labels.write_text("")  # the dry run checks that it exists
    result = CliRunner().invoke(app, ["gsrm", "train", "--recipe", "gsrm-qwen2.5-1.5b",
                                      "--examples", str(labels), "--set", "held_out=0.2",
                                      "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "held_out: 0.2" in result.output and f"examples: {labels}" in result.output
    assert "model: qwen2.5-1.5b" in result.output and "lora_rank: 16" in result.output


# ---------------------------------------------------------------------------------------------
# A real run

@pytest.fixture(scope="module")
def gsrm_run(tiny_model_dir, tmp_path_factory):
    """Rules labels for 12 synthetic problems; `gsrm train` for 2 steps on the tiny model."""
    root = tmp_path_factory.mktemp("gsrm-train")
    labels = root / "labels.jsonl"
    label_with_rules(load_problems("synthetic", subset=12), ResumableOutput(labels))
    result = CliRunner().invoke(app, [
        "gsrm", "train", "--recipe", TEST_RECIPE, "--examples", str(labels),
        "--model", str(tiny_model_dir), "--output-dir", str(root / "run")])
    assert result.exit_code == 0, result.output
    return root, " ".join(result.output.split())


@pytest.mark.slow
def test_train_writes_adapter_metrics_and_held_out_evaluation(gsrm_run):
    from safetensors.torch import load_file

    root, output = gsrm_run
    run = root / "run"
    config = json.loads((run / "adapter" / "adapter_config.json").read_text())
    student = load_config(STUDENT_TEST_RECIPE)
    assert config["r"] == student.lora_rank
    assert sorted(config["target_modules"]) == sorted(student.lora_target_modules)
    # PEFT starts B at zero: trained weights are not.
    tensors = load_file(str(run / "adapter" / "adapter_model.safetensors"))
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in tensors.items())
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in metrics] == [1, 2] and all("loss" in row for row in metrics)
    evaluation = json.loads((run / "eval.json").read_text())
    assert evaluation["examples"] == 3  # 25% of 12
    for key in ("parse_rate", "step_count_agreement", "mean_structure_reward_normalized"):
        assert 0 <= evaluation[key] <= 1
    assert evaluation["max_new_tokens"] == 16
    predictions = [json.loads(line) for line in
                   (run / "eval_predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 3 and all(p["label"] and "output" in p for p in predictions)
    assert "held-out parse_rate" in output and f"--gsrm-adapter {run}" in output


@pytest.mark.slow
def test_trained_adapter_loads_in_score_and_beside_the_student(gsrm_run, tiny_model_dir):
    from safetensors.torch import load_file

    root, _ = gsrm_run
    run = root / "run"
    # score: teacher traces given as steps, student traces as text for the gsrm decomposer.
    labels = [json.loads(line) for line in (root / "labels.jsonl").read_text().splitlines()][:3]
    (root / "teacher.jsonl").write_text("".join(
        json.dumps({"id": row["id"], "steps": row["steps"]}) + "\n" for row in labels))
    (root / "student.jsonl").write_text("".join(
        json.dumps({"id": row["id"], "question": row["question"], "reasoning": row["reasoning"]})
        + "\n" for row in labels))
    result = CliRunner().invoke(app, [
        "score", str(root / "teacher.jsonl"), str(root / "student.jsonl"), "--decomposer", "gsrm",
        "--model", str(tiny_model_dir), "--adapter", str(run), "--judge", "exact",
        "--json", str(root / "report.json")])
    assert result.exit_code == 0, result.output
    assert json.loads((root / "report.json").read_text())["summary"]["pairs"] == 3

    # train --gsrm-adapter: the student's loader takes the run directory as it is.
    from rlkd_lite.models.adapters import GSRM_ADAPTER, STUDENT_ADAPTER
    from rlkd_lite.models.loading import LoraSettings, load_student

    student = load_config(STUDENT_TEST_RECIPE)
    model, _ = load_student(
        str(tiny_model_dir), backend=student.backend, max_seq_length=student.max_seq_length,
        load_in_4bit=student.load_in_4bit, gsrm_adapter=str(run),
        lora=LoraSettings(student.lora_rank, student.lora_alpha, student.lora_dropout,
                          tuple(student.lora_target_modules)))
    assert set(model.peft_config) == {STUDENT_ADAPTER, GSRM_ADAPTER}
    saved = load_file(str(run / "adapter" / "adapter_model.safetensors"))
    key = next(k for k in saved if "lora_B" in k)
    loaded = dict(model.named_parameters())[key.replace(".weight", f".{GSRM_ADAPTER}.weight")]
    assert loaded.detach().float().cpu().equal(saved[key].float())
    assert not loaded.requires_grad


def test_dry_run_checks_an_init_adapter_before_anything_loads(tmp_path):
    result = CliRunner().invoke(app, ["gsrm", "train", "--recipe", TEST_RECIPE, "--examples",
                                      "labels.jsonl", "--model", "qwen2.5-1.5b", "--set",
                                      f"init_adapter={tmp_path}", "--dry-run"])
    assert result.exit_code == 1 and "no LoRA adapter here" in result.output, result.output


@pytest.mark.slow
def test_ctrl_c_stops_without_evaluating_and_the_run_resumes(tiny_model_dir, tmp_path,
                                                             monkeypatch):
    import signal

    from rlkd_lite.train.callbacks import GracefulInterrupt

    labels = tmp_path / "labels.jsonl"
    label_with_rules(load_problems("synthetic", subset=12), ResumableOutput(labels))
    run = tmp_path / "run"

    def ctrl_c_in_the_first_step(self, args, state, control, **kwargs):
        if state.global_step == 0:
            signal.raise_signal(signal.SIGINT)  # to the handler the run installed

    with monkeypatch.context() as patched:
        patched.setattr(GracefulInterrupt, "on_step_begin", ctrl_c_in_the_first_step)
        result = CliRunner().invoke(app, [
            "gsrm", "train", "--recipe", TEST_RECIPE, "--examples", str(labels),
            "--model", str(tiny_model_dir), "--output-dir", str(run), "--max-steps", "2"])
    output = " ".join(result.output.split())
    assert result.exit_code == 130, output
    assert (f"interrupted at step 1 of 2, not evaluated; continue with: rlkd-lite gsrm train "
            f"--recipe {run / 'config.yaml'} --resume") in output
    assert (run / "adapter" / "adapter_config.json").is_file()
    assert not (run / "eval.json").exists()

    result = CliRunner().invoke(app, ["gsrm", "train", "--recipe", str(run / "config.yaml"),
                                      "--resume"])
    assert result.exit_code == 0, result.output
    assert (run / "eval.json").is_file() and "gsrm adapter trained" in result.output
