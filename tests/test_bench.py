"""`rlkd-lite bench` on a CPU with the tiny shape: the same code the GPU check runs.

The plain-stack variant (grpo-hf) is left out here: without a GPU, TRL's Triton LM-head kernel
only runs under Triton's interpreter, at minutes per step.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from rlkd_lite.cli import app
from rlkd_lite.train.bench import (BenchTargets, check_targets, ms_per_decode_step,
                                   bench_steps, structure_seconds)
from rlkd_lite.train.run_dir import RunDir


@pytest.mark.slow
def test_bench_runs_each_variant_and_splits_the_step_by_stage(tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(app, [
        "bench", "--recipe", "bench-tiny", "--shape", "tiny", "--steps", "2",
        "--warmup-steps", "1",
        "--variants", "rlkd-unsloth,grpo-unsloth", "--judge-pairs-per-rollout", "2",
        "--set", "gsrm_max_new_tokens=12", "--set", "init_adapter=null",  # null: sent as text
        "--workdir", str(tmp_path), "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    rlkd, grpo = report["results"]
    assert (rlkd["variant"], grpo["variant"]) == ("rlkd-unsloth", "grpo-unsloth")
    for r in (rlkd, grpo):
        assert r["steps"] == 2 and r["step_time_s"] > 0 and r["generate_s"] > 0
        assert r["warmup_steps"] == 1 and len(r["warmup_step_s"]) == 1
        # The rollout stage (generation, log-probs, rewards) is timed around its parts.
        assert r["rollout_s"] > r["generate_s"] + r["rewards_s"]
        assert r["logprobs_s"] == pytest.approx(r["rollout_s"] - r["generate_s"] - r["rewards_s"])
        assert r["train_s"] == pytest.approx(r["step_time_s"] - r["rollout_s"]) and r["train_s"] > 0
    assert rlkd["structure_decompose_s"] > 0 and grpo["structure_decompose_s"] == 0
    # Random weights never stop early: every rollout and decomposition runs to its limit, so
    # the per-decode-step times divide by those limits (16 rollout tokens, 12 GSRM tokens).
    rows = RunDir(tmp_path / "run-rlkd-unsloth").metric_rows()
    assert [row["completion_tokens_max"] for row in rows] == [16, 16]
    assert [row["completion_cut_off"] for row in rows] == [1.0, 1.0]
    assert all(row["structure_gsrm_cut_off"] == 4 for row in rows)
    assert [row["structure_gsrm_decode_steps"] for row in rows] == [12, 12]
    assert all(0 < row["structure_gsrm_tokens"] <= 12 * 4 for row in rows)
    assert rlkd["decompose_ms_per_decode_step"] == pytest.approx(
        1000 * rows[1]["structure_decompose_s"] / 12)
    assert grpo["generate_ms_per_decode_step"] > 0 and grpo["decompose_ms_per_decode_step"] is None
    assert "decompose ms/decode step" in result.output
    assert "GSRM: adapter, zero-shot (rlkd-unsloth)" in result.output
    assert rlkd["judge_pairs"] == 2 * 4 and rlkd["judge_batch_s"] > 0  # 4 rollouts per step
    assert any("structure reward" in t["goal"] for t in report["targets"])
    assert {t["met"] for t in report["targets"]} == {None}  # a CPU run is not judged
    assert "not judged on a CPU" in result.output
    # --set reaches every variant's recipe; the variant still picks method and backend.
    for variant, method in (("rlkd-unsloth", "rlkd"), ("grpo-unsloth", "grpo")):
        config = yaml.safe_load((tmp_path / f"run-{variant}" / "config.yaml").read_text())
        assert (config["gsrm_max_new_tokens"], config["method"]) == (12, method)
        assert config["init_adapter"] is None
    assert report["set"] == ["gsrm_max_new_tokens=12", "init_adapter=null"]
    # The rlkd variant's GSRM is an (untrained) adapter beside the student, as in a real run.
    assert (rlkd["gsrm"], grpo["gsrm"]) == ("adapter, zero-shot", None)
    assert rlkd["gsrm_unchanged"] is True
    rlkd_config = yaml.safe_load((tmp_path / "run-rlkd-unsloth" / "config.yaml").read_text())
    adapter = Path(rlkd_config["gsrm_adapter"])
    assert (adapter / "adapter_config.json").is_file()
    assert json.loads((adapter / "adapter_config.json").read_text())["r"] == 4  # bench-tiny's


@pytest.mark.slow
def test_bench_gsrm_can_be_the_few_shot_bare_base(tmp_path):
    from rlkd_lite.train.bench import build_random_model, run_variant
    from rlkd_lite.train.config import parse_set_overrides

    model = build_random_model("tiny", tmp_path)
    summary = run_variant("rlkd-unsloth", "bench-tiny", str(model), 1, str(tmp_path / "run"), 0,
                          parse_set_overrides(["gsrm_adapter=null", "gsrm_max_new_tokens=4"]),
                          gsrm_adapter=str(tmp_path / "not-used"), warmup_steps=1)
    assert summary["gsrm"] == "bare base, few-shot"


@pytest.mark.slow
def test_steps_sharing_a_generation_are_averaged_over_whole_cycles(tmp_path):
    from rlkd_lite.train.bench import build_random_model, run_variant

    model = build_random_model("tiny", tmp_path)
    summary = run_variant("grpo-unsloth", "bench-tiny", str(model), 1, str(tmp_path / "run"), 0,
                          {"steps_per_generation": 2},  # 2 optimizer steps per generation
                          warmup_steps=1)
    assert (summary["steps"], summary["steps_per_rollout"]) == (4, 2)  # raised to two cycles
    rows = RunDir(tmp_path / "run").metric_rows()
    assert [row.get("generate_s", 0) > 0 for row in rows] == [True, False, True, False]
    assert summary["generate_s"] == pytest.approx(rows[2]["generate_s"] / 2)
    # Tokens per second of the whole cycle, not a mean that counts the second step as 0.
    assert summary["tokens_per_s"] == pytest.approx(
        rows[2]["completion_tokens"] / (rows[2]["step_time_s"] + rows[3]["step_time_s"]))


def test_bench_steps_leave_out_whole_warm_up_cycles_and_measure_at_least_one():
    # One step per generation: the warm-up as asked (at least the compiling first step).
    assert [bench_steps(8, warmup, 1) for warmup in (0, 1, 3)] == [(8, 1), (8, 1), (8, 3)]
    assert bench_steps(3, 3, 1) == (4, 3)  # at least one measured step
    # Four steps per generation: whole cycles on both sides.
    assert [bench_steps(steps, 3, 4) for steps in (1, 8, 9)] == [(8, 4), (8, 4), (12, 4)]
    assert bench_steps(8, 5, 4) == (12, 8)


def test_time_per_decode_step_counts_only_the_steps_that_decoded():
    rows = [{"generate_s": 3.0, "completion_tokens_max": 100},
            {"generate_s": 0.0},  # a step that reused an earlier generation
            {"generate_s": 1.0, "completion_tokens_max": 60}]
    assert ms_per_decode_step(rows, "generate_s", "completion_tokens_max") == pytest.approx(25.0)
    assert ms_per_decode_step(rows, "structure_decompose_s", "structure_gsrm_decode_steps") is None


def test_targets_are_judged_from_the_numbers():
    results = [
        {"variant": "rlkd-unsloth", "step_time_s": 10.0, "structure_decompose_s": 1.0,
         "structure_judge_s": 0.4, "peak_gpu_gib": 5.4},
        {"variant": "grpo-unsloth", "step_time_s": 9.0},
        {"variant": "grpo-hf", "step_time_s": 19.0},
    ]
    checks = check_targets(results, BenchTargets())

    def find(words: str):
        (hit,) = [(measured, met) for goal, measured, met in checks if words in goal]
        return hit

    assert find("plain TRL GRPO step") == ("0.53×", False)
    assert find("of RLKD step") == ("14%", True)
    assert find("peak GPU memory") == ("5.40 GiB", True)
    assert find("Unsloth GRPO step") == ("+11%", True)
    assert len(checks) == 4
    # The same numbers from a CPU say nothing about the GPU targets.
    on_cpu = check_targets([{**r, "device": "cpu"} for r in results], BenchTargets())
    assert [(g, m) for g, m, _ in on_cpu] == [(g, m) for g, m, _ in checks]
    assert {met for _, _, met in on_cpu} == {None}


def test_a_judge_that_never_ran_in_the_steps_is_stood_in_for_by_its_own_timing():
    rlkd = {"variant": "rlkd-unsloth", "step_time_s": 4.0, "structure_decompose_s": 0.5,
            "structure_judge_s": 0.0, "judge_batch_s": 1.0, "judge_pairs": 96}
    ((goal, measured, met),) = [c for c in check_targets([rlkd], BenchTargets())
                                if "of RLKD step" in c[0]]
    assert "96 pairs" in goal and measured == "30%" and not met  # 1.5 s of a 5 s step
    # Four optimizer steps per generation: the one judge call is spread over them.
    shared = {**rlkd, "steps_per_rollout": 4, "judge_batch_s": 4.0, "judge_pairs": 384}
    structure, step, _ = structure_seconds(shared)
    assert (structure, step) == (1.5, 5.0)


def test_a_variant_that_failed_is_left_out_of_the_targets():
    checks = check_targets([{"variant": "rlkd-unsloth", "error": "exit code 1"},
                            {"variant": "grpo-hf", "step_time_s": 19.0}], BenchTargets())
    assert checks == []


def test_gsrm_token_benchmark_counts_decompositions_with_the_real_tokenizer():
    import re

    script = Path(__file__).parents[1] / "benchmarks" / "gsrm_tokens.py"
    out = subprocess.run([sys.executable, str(script), "--problems", "40"], capture_output=True,
                         text=True, check=True).stdout
    per_step = float(re.search(r"decomposition tokens per step ([\d.]+)", out).group(1))
    # Three tagged lines per step: at least the tags themselves (~20 tokens), short of a paragraph.
    assert 25 < per_step < 100
    assert "few-shot prompt tokens" in out and "40 synthetic problems" in out


def test_a_model_or_adapter_killed_mid_save_is_not_taken_as_built(tmp_path):
    from rlkd_lite.train.bench import SAVED_MARKER, saved_once

    out = tmp_path / "cache" / "random-tiny"

    def save_cut_short(folder: Path) -> None:
        (folder / "config.json").write_text("{}")  # written first, as save_pretrained does
        raise KeyboardInterrupt  # killed before the weights

    with pytest.raises(KeyboardInterrupt):
        saved_once(out, save_cut_short)
    assert not out.exists() and list(out.parent.iterdir()) == []  # nothing half-written left

    saves = []

    def save(folder: Path) -> None:
        saves.append(folder)
        (folder / "config.json").write_text("{}")
        (folder / "model.safetensors").write_text("weights")

    assert saved_once(out, save) == out and saved_once(out, save) == out
    assert len(saves) == 1  # built once, then reused
    assert sorted(p.name for p in out.iterdir()) == [SAVED_MARKER, "config.json",
                                                     "model.safetensors"]
    assert [p.name for p in out.parent.iterdir()] == ["random-tiny"]


def test_saving_once_rebuilds_an_unfinished_folder_and_clears_dead_runs_partial_folders(
        tmp_path):
    """A SIGKILL (or `timeout`'s SIGTERM) runs no cleanup: what a dead process left is removed
    by the next build, and a folder of an older version without the marker is built again."""
    from rlkd_lite.train.bench import saved_once

    out = tmp_path / "random-tiny"
    out.mkdir()
    (out / "config.json").write_text("{}")  # an older version's build, killed mid-save
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    left = tmp_path / f".random-tiny.partial-{dead}-1"
    left.mkdir()
    (left / "config.json").write_text("{}")
    alive = tmp_path / f".random-tiny.partial-{os.getppid()}-1"  # a bench still saving
    alive.mkdir()

    def save(folder: Path) -> None:
        (folder / "model.safetensors").write_text("weights")

    saved_once(out, save)
    assert (out / "model.safetensors").is_file() and not (out / "config.json").exists()
    assert not left.exists() and alive.exists()
