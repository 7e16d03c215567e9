"""`rlkd-lite eval` end to end on the tiny offline model, the metrics it computes, the refusal
to evaluate a run on its own training problems, and `--compare`.

Runs are made without training: a run directory is a config.yaml (written by `RunDir.prepare`
as training writes it) and a LoRA adapter saved from the random tiny PeftModel.
"""
from __future__ import annotations

import dataclasses
import json
import statistics
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rlkd_lite.cli import app
from rlkd_lite.data.jsonl import write_json_atomic
from rlkd_lite.data.problems import load_problems, write_problems_jsonl
from rlkd_lite.eval import evaluate as evaluate_module
from rlkd_lite.eval.evaluate import Completion, EvalResult, EvalSettings, evaluate, read_eval
from rlkd_lite.train.config import load_config
from rlkd_lite.train.rewards import render_target
from rlkd_lite.train.run_dir import RunDir

SYSTEM_PROMPT = "Answer the question. (eval test prompt)"


def run_eval(*args: str):
    """`rlkd-lite eval ARGS`: (exit code, output with whitespace collapsed)."""
    result = CliRunner().invoke(app, ["eval", *args])
    return result.exit_code, " ".join(result.output.split())


def make_run(path: Path, model_dir: Path, adapter_model=None, **overrides) -> Path:
    """A run directory as training leaves it: config.yaml and (optionally) adapter/."""
    config = load_config("tiny-cpu", {"model": str(model_dir), "output_dir": str(path),
                                      "system_prompt": SYSTEM_PROMPT, "subset": 8,
                                      "max_completion_length": 8, **overrides})
    RunDir(path).prepare(config.to_dict(), resume=False)
    if adapter_model is not None:
        adapter_model.save_pretrained(str(path / "adapter"), selected_adapters=["default"])
    return path


@pytest.fixture
def tiny_run(tmp_path, tiny_model_dir, tiny_peft_model):
    """A run on the synthetic train split, with the random (output-changing) student adapter."""
    return make_run(tmp_path / "run", tiny_model_dir, tiny_peft_model)


@pytest.mark.slow
def test_eval_of_a_run_and_of_the_base_model(tiny_run, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, output = run_eval("--adapter", str(tiny_run), "--data", "synthetic", "--limit", "3",
                            "--samples", "3", "--k", "1,2", "--show", "1")
    assert code == 0, output
    assert "divergence" in output  # the --show table marks the first divergence
    trained = read_eval(tiny_run)  # written to RUN/eval.json by default
    # Defaults come from the run: its model, its system prompt, its completion length.
    assert trained.model == str(tiny_model_dir) and trained.run == str(tiny_run)
    assert trained.settings["system_prompt"] == SYSTEM_PROMPT
    assert trained.settings["max_new_tokens"] == 8
    assert set(trained.metrics) == {"problems", "accuracy", "pass@1", "pass@2", "structure",
                                    "structure_problems", "completion_tokens", "cut_off"}
    assert trained.metrics["problems"] == 3
    assert [item["id"] for item in trained.items] == [f"syn-test-{i:06d}" for i in range(3)]
    for item in trained.items:
        assert 1 <= item["completion_tokens"] <= 8
        # The random model never stops by itself: every completion runs into the limit.
        assert item["cut_off"] and item["completion_tokens"] == 8
        assert 0 <= item["samples_correct"] <= 3
        assert item["teacher_steps"]  # synthetic problems carry teacher traces
    assert 0 < trained.metrics["completion_tokens"] <= 8
    assert trained.metrics["cut_off"] == 1.0 and "cut off" in output

    code, output = run_eval("--model", str(tiny_model_dir), "--recipe",
                            str(tiny_run / "config.yaml"), "--data", "synthetic", "--limit", "3",
                            "--output", "base/eval.json")
    assert code == 0, output
    base = read_eval(tmp_path / "base")
    assert base.adapter is None and base.run is None and "pass@1" not in base.metrics
    # The same prompts, but the adapter changes what the model writes.
    assert [i["question"] for i in base.items] == [i["question"] for i in trained.items]
    assert [i["completion"] for i in base.items] != [i["completion"] for i in trained.items]


@pytest.mark.slow
def test_metrics_from_known_completions(tiny_run, monkeypatch):
    """accuracy, pass@k, structure, length and cut-off share computed from completions we
    choose: problem 0 answered with the teacher's own solution, the others wrong (the last cut
    off by the token limit); sampled answers right 2, 1 and 0 times out of 4."""
    problems = load_problems("synthetic", subset=3, split="test")
    right = render_target(problems[0].reasoning, problems[0].answer, "think")
    samples_right = [2, 1, 0]

    def fake_generate(model, tokenizer, conversations, *, samples_per_prompt=1, temperature=None,
                      **_):
        assert len(conversations) == 3
        assert conversations[0] == [{"role": "system", "content": SYSTEM_PROMPT},
                                    {"role": "user", "content": problems[0].question}]
        if temperature is None:
            return [[Completion(right, 40, False)], [Completion("#### -1", 5, False)],
                    [Completion("no idea", 3, True)]]
        assert samples_per_prompt == 4 and temperature == 0.5
        return [[Completion(f"#### {p.answer}", 4, False)] * c
                + [Completion("#### -1", 4, False)] * (4 - c)
                for p, c in zip(problems, samples_right)]

    monkeypatch.setattr(evaluate_module, "generate_completions", fake_generate)
    result = evaluate(EvalSettings(recipe="tiny-cpu", adapter=str(tiny_run), data="synthetic",
                                   limit=3, samples=4, temperature=0.5))
    assert result.metrics["accuracy"] == pytest.approx(1 / 3)
    # pass@1 = mean(c / n); pass@4 = share of problems with any right sample
    assert result.metrics["pass@1"] == pytest.approx((2 / 4 + 1 / 4 + 0) / 3)
    assert result.metrics["pass@4"] == pytest.approx(2 / 3)
    assert result.metrics["completion_tokens"] == pytest.approx((40 + 5 + 3) / 3)
    assert result.metrics["cut_off"] == pytest.approx(1 / 3)
    assert [item["cut_off"] for item in result.items] == [False, False, True]
    # The teacher's own reasoning reproduces every teacher step (1 each); the others have none.
    first = result.items[0]
    assert first["correct"] and first["structure"] == len(first["teacher_steps"]) > 1
    assert result.items[1]["predicted"] == "-1" and not result.items[1]["correct"]
    assert result.metrics["structure"] == pytest.approx(len(first["teacher_steps"]) / 3)
    assert [item["samples_correct"] for item in result.items] == samples_right


def test_refuses_to_evaluate_a_run_on_its_training_problems(tmp_path, tiny_model_dir,
                                                            tiny_peft_model, monkeypatch):
    monkeypatch.chdir(tmp_path)
    training = load_problems("synthetic", subset=6, split="train")
    write_problems_jsonl(tmp_path / "train.jsonl", training)
    run = make_run(tmp_path / "run", tiny_model_dir, tiny_peft_model,
                   data=str(tmp_path / "train.jsonl"), subset=4)

    # The run's own file (its first 4 problems were trained on): refused, before any model loads.
    code, output = run_eval("--adapter", str(run), "--data", str(tmp_path / "train.jsonl"))
    assert code == 1
    assert "refusing to evaluate: 4 of 6 eval problems are in the training set" in output
    assert "'syn-train-000000'" in output

    # Another file holding one training question under another id: refused too.
    write_problems_jsonl(tmp_path / "other.jsonl", [
        *load_problems("synthetic", subset=2, split="test"),
        dataclasses.replace(training[2], id="renamed")])
    code, output = run_eval("--adapter", str(run), "--data", str(tmp_path / "other.jsonl"))
    assert code == 1 and "1 of 3 eval problems" in output and "'renamed'" in output

    # Without --data the run's JSONL would be reused, which has no held-out split.
    code, output = run_eval("--adapter", str(run))
    assert code == 1 and "--data is required" in output

    # A run started from this one (SFT -> RLKD) inherits its training problems (its own
    # synthetic seed-1 problems do not overlap other.jsonl).
    child = make_run(tmp_path / "child", tiny_model_dir, tiny_peft_model, init_adapter=str(run),
                     seed=1)
    code, output = run_eval("--adapter", str(child), "--data", str(tmp_path / "other.jsonl"))
    assert code == 1 and f"training set of run {run}" in output


def test_bad_k_is_refused_before_loading_anything(tiny_model_dir):
    code, output = run_eval("--model", str(tiny_model_dir), "--recipe", "tiny-cpu",
                            "--samples", "2", "--k", "1,4")
    assert code == 1 and "pass@k needs 1 <= k <= --samples (2); got k = 4" in output
    code, output = run_eval("--model", str(tiny_model_dir), "--recipe", "tiny-cpu", "--k", "x")
    assert code == 1 and "comma-separated integers" in output


def test_a_path_without_an_adapter_is_refused_before_loading_anything(tmp_path):
    # Data that cannot load (gsm8k needs the Hub) and a model that is not there: had either
    # loaded first, the error would be about it.
    for option in ("--adapter", "--gsrm-adapter"):
        code, output = run_eval("--model", str(tmp_path / "no-model"), "--data", "gsm8k",
                                option, str(tmp_path / "no-adapter"))
        assert code == 1 and "no-adapter: no LoRA adapter here" in output, output
        assert "not in a run directory" not in output and "Traceback" not in output


def write_eval(path: Path, accuracy: float, structure: float, problems: int = 50,
               adapter: str | None = None) -> None:
    result = EvalResult(
        model="qwen2.5-1.5b", adapter=adapter, run=None, data="synthetic", split="test",
        settings={"seed": 0, "decomposer": "auto", "judge": "lexical", "normalize": False},
        metrics={"problems": problems, "accuracy": accuracy, "pass@4": accuracy + 0.1,
                 "structure": structure, "completion_tokens": 120.5})
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, result.to_json())


def test_compare_puts_evaluations_side_by_side(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_eval(tmp_path / "base" / "eval.json", accuracy=0.25, structure=0.4)
    write_eval(tmp_path / "rlkd" / "eval.json", accuracy=0.5, structure=1.25, adapter="rlkd")
    write_eval(tmp_path / "grpo.json", accuracy=0.375, structure=0.5, problems=40)
    code, output = run_eval("--compare", "base", "rlkd/eval.json", "grpo.json")
    assert code == 0, output
    for text in ("base", "rlkd", "grpo", "pass@4", "25.0%", "50.0%", "37.5%", "35.0%", "60.0%",
                 "47.5%", "0.400", "1.250", "0.500", "120.5"):
        assert text in output, text
    assert "differ in data" in output  # grpo was evaluated on 40 problems, the others on 50


def test_compare_reports_missing_and_bad_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.json").write_text(json.dumps({"model": "x"}))
    code, output = run_eval("--compare", "nothere")
    assert code == 1 and "nothere: not found: give an eval.json file or a directory" in output
    code, output = run_eval("--compare", "bad.json")
    assert code == 1 and "not an eval.json" in output
    code, output = run_eval("--compare")
    assert code == 1 and "needs eval.json files" in output
    code, output = run_eval("bad.json")
    assert code == 1 and "only for --compare" in output


@pytest.mark.slow
def test_problems_without_teacher_traces_get_accuracy_but_no_structure(tmp_path, tiny_model_dir,
                                                                       monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "plain.jsonl").write_text(
        '{"id": "p1", "question": "What is 2+3?", "answer": "5"}\n'
        '{"id": "p2", "question": "What is 4*4?", "answer": 16}\n')
    code, output = run_eval("--model", str(tiny_model_dir), "--recipe", "tiny-cpu", "--data",
                            "plain.jsonl", "--max-new-tokens", "4", "-o", "eval.json")
    assert code == 0, output
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["metrics"]["problems"] == 2 and "accuracy" in report["metrics"]
    assert "structure" not in report["metrics"]


@pytest.mark.slow
def test_structure_is_the_mean_over_the_problems_with_a_teacher_trace(tmp_path, tiny_model_dir,
                                                                      monkeypatch):
    """Four problems with traces answered with the teacher's own reasoning, one without: the
    structure mean is over the four, and the result says so; accuracy counts all five."""
    monkeypatch.chdir(tmp_path)
    traced = load_problems("synthetic", subset=4, split="test")
    write_problems_jsonl(tmp_path / "mixed.jsonl", traced)
    with open(tmp_path / "mixed.jsonl", "a") as handle:
        handle.write('{"id": "plain", "question": "What is 2+3?", "answer": "5"}\n')

    def fake_generate(model, tokenizer, conversations, **_):
        return [[Completion(render_target(p.reasoning, p.answer, "think"), 40, False)]
                for p in traced] + [[Completion("#### 5", 3, False)]]

    monkeypatch.setattr(evaluate_module, "generate_completions", fake_generate)
    code, output = run_eval("--recipe", "tiny-cpu", "--model", str(tiny_model_dir),
                            "--data", "mixed.jsonl", "-o", "eval.json", "--show", "5")
    assert code == 0, output
    result = read_eval(tmp_path / "eval.json")
    assert result.metrics["accuracy"] == 1.0 and result.metrics["problems"] == 5
    assert result.metrics["structure"] == pytest.approx(
        statistics.fmean(len(item["teacher_steps"]) for item in result.items[:4]))
    assert result.metrics["structure_problems"] == 4
    assert "structure reward is the mean over the 4 of 5 problems" in output
    # --show leaves out the problem without teacher steps: its 0 would rank it "worst".
    assert output.count("teacher") >= 4 and "plain" not in output


@pytest.mark.slow
def test_held_out_jsonl_without_ids_is_not_taken_for_training_problems(tmp_path, tiny_model_dir,
                                                                       tiny_peft_model,
                                                                       monkeypatch):
    """Rows without ids are numbered by line, and `teach` writes one source on every row, so
    a training file and another test file share every (source, id): only the question counts."""
    monkeypatch.chdir(tmp_path)
    synthetic = load_problems("synthetic", subset=4, split="test")

    def write_teacher_file(path: Path, problems, questions=None) -> None:
        path.write_text("".join(json.dumps({
            "question": question, "answer": p.answer, "reasoning": p.reasoning,
            "source": "teacher:m"}) + "\n"
            for p, question in zip(problems, questions or [p.question for p in problems])))

    write_teacher_file(tmp_path / "train.jsonl", synthetic[:2])
    write_teacher_file(tmp_path / "test.jsonl", synthetic[2:])
    run = make_run(tmp_path / "run", tiny_model_dir, tiny_peft_model,
                   data=str(tmp_path / "train.jsonl"), subset=None)
    code, output = run_eval("--adapter", str(run), "--data", "test.jsonl",
                            "--max-new-tokens", "2")
    assert code == 0, output
    assert [item["question"] for item in read_eval(run).items] == [
        p.question for p in synthetic[2:]]

    # A training question with other spacing, on another line, is still refused.
    spaced = "  " + synthetic[1].question.replace(" ", "\n ", 1)
    write_teacher_file(tmp_path / "leak.jsonl", synthetic[2:4] + synthetic[1:2],
                       [synthetic[2].question, synthetic[3].question, spaced])
    code, output = run_eval("--adapter", str(run), "--data", "leak.jsonl")
    assert code == 1
    assert "refusing to evaluate: 1 of 3 eval problems are in the training set" in output
    assert "(data " in output and ": '3'. Evaluate on held-out problems" in output


def test_sampling_at_temperature_zero_is_refused_before_loading_anything(tmp_path):
    # A model that is not there: had it loaded, the error would be about the model.
    missing_model = str(tmp_path / "no-model")
    for temperature in ("0", "-0.5"):
        code, output = run_eval("--model", missing_model, "--recipe", "tiny-cpu", "--samples",
                                "2", "--temperature", temperature)
        assert code == 1
        assert (f"error: sampling for pass@k (--samples 2) needs --temperature above 0, not "
                f"{float(temperature)}") in output
        assert "Traceback" not in output
    # An SFT recipe need not sample, so its temperature may be 0: the message says whose it is.
    make_run(tmp_path / "sft", tmp_path, method="sft", temperature=0.0)
    code, output = run_eval("--model", missing_model, "--recipe",
                            str(tmp_path / "sft" / "config.yaml"), "--samples", "1")
    assert code == 1
    assert ("sampling for pass@k (--samples 1) needs --temperature above 0, not 0.0 (the run's "
            "or recipe's)") in output


@pytest.mark.slow
def test_a_checkpoint_is_evaluated_beside_it_not_over_the_runs_eval(tiny_run, tiny_peft_model,
                                                                    tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    checkpoint = tiny_run / "checkpoints" / "checkpoint-4"
    tiny_peft_model.save_pretrained(str(checkpoint), selected_adapters=["default"])
    (tiny_run / "metrics.jsonl").write_text('{"step": 4, "loss": 0.5}\n')
    for adapter, limit in ((tiny_run / "adapter", "2"), (checkpoint, "1")):
        code, output = run_eval("--adapter", str(adapter), "--data", "synthetic", "--limit",
                                limit, "--max-new-tokens", "2")
        assert code == 0, output
    assert f"written to {checkpoint / 'eval.json'}" in output
    # RUN/eval.json stays the final adapter's: report and --compare find it there.
    final = read_eval(tiny_run)
    assert final.adapter == str(tiny_run / "adapter") and final.metrics["problems"] == 2
    assert read_eval(checkpoint).adapter == str(checkpoint)
    assert read_eval(checkpoint).run == str(tiny_run)
    code, output = run_eval("--compare", str(tiny_run), str(checkpoint))
    assert code == 0, output
    # Each label with its own evaluation (the final adapter's on 2 problems, the checkpoint's 1).
    assert ("differ in data: run: ('synthetic', 'test', 0, 2); checkpoint-4: ('synthetic', "
            "'test', 0, 1)") in output
    result = CliRunner().invoke(app, ["report", str(tiny_run)])
    assert result.exit_code == 0, result.output
    html = (tiny_run / "report.html").read_text()
    assert f"<th>adapter</th><td>{tiny_run / 'adapter'}</td>" in html
    assert "<th>problems</th><td>2</td>" in html


@pytest.mark.slow
def test_a_run_without_its_final_adapter_points_at_its_newest_checkpoint(
        tmp_path, tiny_model_dir, tiny_peft_model, monkeypatch):
    """A run killed before it saved adapter/: the error names the checkpoint to evaluate."""
    monkeypatch.chdir(tmp_path)
    run = make_run(tmp_path / "run", tiny_model_dir)
    for step in (2, 10, 12):
        folder = run / "checkpoints" / f"checkpoint-{step}"
        tiny_peft_model.save_pretrained(str(folder), selected_adapters=["default"])
        if step != 12:  # checkpoint-12 was cut off mid-save: the Trainer writes this last
            (folder / "trainer_state.json").write_text("{}")
    code, output = run_eval("--adapter", str(run), "--data", "synthetic", "--limit", "1")
    assert code == 1
    assert output.endswith(
        f"error: {run}: no LoRA adapter here (expected adapter_config.json in it or in "
        f"{run / 'adapter'}); the run saved no final adapter (stopped early?), but its newest "
        f"checkpoint has one: {run / 'checkpoints' / 'checkpoint-10'}")


def test_evaluating_an_interrupted_runs_adapter_warns(tmp_path, capsys):
    from rlkd_lite.eval.evaluate import warn_if_interrupted

    run = tmp_path / "run"
    run.mkdir()
    warn_if_interrupted(run, run)  # no summary.json: nothing to say
    write_json_atomic(run / "summary.json", {"steps": 3, "max_steps": 250, "interrupted": True})
    warn_if_interrupted(run, run / "checkpoints" / "checkpoint-2")  # a checkpoint is what it is
    assert capsys.readouterr().err == ""
    warn_if_interrupted(run, run / "adapter")
    err = " ".join(capsys.readouterr().err.split())
    assert f"run {run} was stopped by Ctrl-C at step 3 of 250" in err


@pytest.mark.slow
def test_model_backed_structure_scoring_uses_the_recipes_budgets(tiny_model_dir, tmp_path,
                                                                 monkeypatch, caplog):
    """--decomposer gsrm and --judge llm run with the recipe's gsrm_max_new_tokens (24 in the
    test recipe, not the decomposer's own default) and batch sizes, as in training. The random
    model never stops, so each decomposition runs into that budget, and the warning names it."""
    from rlkd_lite.structure import llm

    monkeypatch.chdir(tmp_path)
    made = {}

    def recording(cls):
        """`cls`, noting the options it is built with."""
        class Recording(cls):
            def __init__(self, *args, **options):
                made[cls.__name__] = options
                super().__init__(*args, **options)
        return Recording

    for name in ("GSRMDecomposer", "LLMJudge"):
        monkeypatch.setattr(llm, name, recording(getattr(llm, name)))
    recipe = str(Path(__file__).parent / "recipes" / "tiny-test.yaml")
    with caplog.at_level("WARNING"):
        result = evaluate(EvalSettings(recipe=recipe, model=str(tiny_model_dir),
                                       data="synthetic", limit=2, decomposer="gsrm",
                                       judge="llm"), output=tmp_path / "eval.json")
    assert made["GSRMDecomposer"]["max_new_tokens"] == 24
    assert made["GSRMDecomposer"]["batch_size"] == 8 and made["LLMJudge"]["batch_size"] == 16
    assert "cut off 2 of 2 decompositions" in caplog.text and "now 24" in caplog.text
    assert result.settings["decomposer"] == "gsrm" and "structure" in result.metrics
