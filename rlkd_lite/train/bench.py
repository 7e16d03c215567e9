"""`rlkd-lite bench`: time RLKD's step, split by stage, against GRPO with and without Unsloth.

A fixed workload (a recipe: 4-bit, LoRA rank, generations × completion length, a few steps)
runs several ways, each in its own Python process, because Unsloth patches transformers and TRL
on import and the plain-stack variant must not see those patches:

    rlkd-unsloth   --method rlkd through Unsloth, the in-process GSRM decomposing and judging
    grpo-unsloth   --method grpo through Unsloth (no structure reward)
    grpo-hf        --method grpo on transformers + PEFT + bitsandbytes, no Unsloth

Without weights at hand (the GPU machines here have no network) the model is random-initialised
with a real shape (`--shape`). Random weights never emit EOS, so every rollout and every GSRM
decomposition runs to its token limit: the numbers are an upper bound on generation time and say
nothing about accuracy. The GSRM runs as in a real RLKD run (README, "The whole path"): a gsrm
adapter beside the student, prompted zero-shot. Untrained here (`build_random_gsrm_adapter`), it
costs what a trained one does; `--set gsrm_adapter=null` times the few-shot bare base instead.
The mean leaves out the warm-up steps (`warmup_steps`, rounded up to whole generation cycles: a
cycle is one step, or `steps_per_generation` ÷ `gradient_accumulation_steps` steps when several
share a generation). The first step compiles; on an H200 step 2 or 3 still ran 1.1–1.7 s slower
than steps 4–8 (why is not measured), so a mean over steps 2–3 alone, as this bench took
before, overstated the step. The first step is reported apart.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VARIANTS = {"rlkd-unsloth": ("rlkd", "unsloth"), "grpo-unsloth": ("grpo", "unsloth"),
            "grpo-hf": ("grpo", "hf")}
STAGES = ("step_time_s", "rollout_s", "generate_s", "rewards_s", "structure_decompose_s",
          "structure_judge_s")


@dataclass
class BenchTargets:
    """The goals of issue 6, checked on the reference workload."""

    rlkd_vs_plain_step: float = 0.5   # RLKD step time at most this × the plain TRL GRPO step
    structure_share: float = 0.15     # decompose + judge at most this share of the RLKD step
    peak_memory_gib: float = 6.0      # RLKD peak GPU memory


def build_random_model(shape: str, cache: Path) -> Path:
    """A random-initialised model of `shape`, built once per cache directory."""
    from rlkd_lite.models.tiny import RANDOM_SHAPES, build_tiny_qwen2

    def build(folder: Path) -> None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = "bfloat16" if device == "cuda" else "float32"
        build_tiny_qwen2(folder, dtype=dtype, device=device, **RANDOM_SHAPES[shape])

    return saved_once(cache / f"random-{shape}", build)


SAVED_MARKER = ".saved"
"""Written last into a folder `saved_once` fills: without it a folder is not complete."""


def saved_once(out: Path, save: Callable[[Path], None]) -> Path:
    """`out`, which `save` fills once: into a new folder beside it, renamed to `out` when
    complete (`SAVED_MARKER`). A bench killed in the middle of a save (a time limit, during
    gigabytes of weights) leaves no half-written folder that later runs would take as built;
    one left by older versions, without the marker, is built again. Partial folders of dead
    processes are removed first, so that killed runs do not fill the disk."""
    if (out / SAVED_MARKER).is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{out.name}.partial-"
    for stale in out.parent.glob(f"{prefix}*"):
        pid = stale.name[len(prefix):].partition("-")[0]
        if not pid.isdigit() or not _process_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    partial = out.with_name(f"{prefix}{os.getpid()}-{time.monotonic_ns()}")
    partial.mkdir()
    try:
        save(partial)
        (partial / SAVED_MARKER).touch()
        shutil.rmtree(out, ignore_errors=True)  # an incomplete one (older versions)
        try:
            partial.rename(out)
        except OSError:
            if not (out / SAVED_MARKER).is_file():
                raise
            # Another bench on this work folder finished the same build first: use its copy.
    finally:
        shutil.rmtree(partial, ignore_errors=True)  # gone after the rename, unless it failed
    return out


def _process_alive(pid: int) -> bool:
    """Whether process `pid` runs; True where that cannot be told (Windows, where `os.kill`
    would end the process, or someone else's process)."""
    if pid == os.getpid() or os.name == "nt":
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists, but is not ours
        return True
    return True


def build_random_gsrm_adapter(model_dir: Path, config: Any) -> Path:
    """An untrained LoRA adapter of the run config's rank and target modules on `model_dir`,
    saved beside it once: it stands in for a trained gsrm adapter. Its B matrices are zero
    (PEFT's default initialisation), so it decomposes like the bare base, at an adapter's cost."""
    targets = "-".join(sorted(config.lora_target_modules))

    def build(folder: Path) -> None:
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        cuda = torch.cuda.is_available()
        base = AutoModelForCausalLM.from_pretrained(
            model_dir, dtype=torch.bfloat16 if cuda else torch.float32,
            device_map="cuda" if cuda else "cpu")
        model = get_peft_model(base, LoraConfig(
            r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
            target_modules=list(config.lora_target_modules), task_type="CAUSAL_LM"))
        model.save_pretrained(folder)
        del model, base
        if cuda:
            torch.cuda.empty_cache()  # the variants run in processes of their own

    return saved_once(model_dir.with_name(f"{model_dir.name}-gsrm-r{config.lora_rank}-{targets}"),
                      build)


def run_variant(variant: str, recipe: str, model_dir: str, steps: int, out_dir: str,
                judge_pairs_per_rollout: int, overrides: dict[str, Any] | None = None,
                gsrm_adapter: str | None = None, *, warmup_steps: int) -> dict[str, Any]:
    """Train `steps` steps of one variant in this process and summarise its metrics over the
    steps after `warmup_steps` (both rounded up to whole generation cycles, `bench_steps`).
    `overrides` are recipe fields set for every variant (the variant's method and backend win).
    `gsrm_adapter` is loaded beside the student of an rlkd variant, unless `overrides` name
    one or clear it (`gsrm_adapter=null`)."""
    from rlkd_lite.train.config import load_config
    from rlkd_lite.train.run import run_training
    from rlkd_lite.train.run_dir import RunDir

    method, backend = VARIANTS[variant]
    overrides = dict(overrides or {})
    if method == "rlkd" and gsrm_adapter:
        overrides.setdefault("gsrm_adapter", gsrm_adapter)
    config = load_config(recipe, {
        **overrides, "model": model_dir, "method": method, "backend": backend,
        "max_steps": steps, "output_dir": out_dir, "save_steps": steps, "sample_every": steps,
        # One metrics row per step: the warm-up and the means count steps.
        "logging_steps": 1})
    # Steps between generations (steps_per_generation): the mean covers whole cycles after the
    # warm-up, so that each generation's cost is spread over the steps that share it.
    cycle = config.steps_per_rollout()
    steps_to_run, warmup = bench_steps(steps, warmup_steps, cycle)
    if steps_to_run != steps:
        steps = steps_to_run
        config = dataclasses.replace(config, max_steps=steps, save_steps=steps,
                                     sample_every=steps)
    import torch

    cuda = torch.cuda.is_available()
    start = time.perf_counter()
    result = run_training(config)
    total = time.perf_counter() - start
    rows = RunDir(Path(out_dir)).metric_rows()
    steady = rows[warmup:]
    if not steady:
        raise RuntimeError(f"{variant}: the run logged {len(rows)} step(s), none after the "
                           f"{warmup} warm-up step(s)")
    summary: dict[str, Any] = {
        "variant": variant, "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "steps": result.steps, "steps_per_rollout": cycle, "warmup_steps": warmup,
        "first_step_s": rows[0]["step_time_s"],
        "warmup_step_s": [round(r["step_time_s"], 3) for r in rows[:warmup]],
        "run_s": round(total, 2),
        # Rollout tokens over the time of all the steady steps: with steps_per_generation,
        # one step generates for the steps after it.
        "tokens_per_s": (sum(r.get("completion_tokens", 0) for r in steady)
                         / sum(r["step_time_s"] for r in steady)),
        "peak_gpu_gib": max(r.get("peak_gib", 0.0) for r in rows) if cuda else None,
        "generate_peak_gib": max(r.get("generate_peak_gib", 0.0) for r in rows) if cuda else None,
        "rewards_peak_gib": max(r.get("rewards_peak_gib", 0.0) for r in rows) if cuda else None,
        "gsrm_unchanged": result.gsrm_unchanged,
        "gsrm": None if method != "rlkd" else ("adapter, zero-shot" if config.gsrm_adapter
                                               else "bare base, few-shot"),
    }
    for stage in STAGES:
        summary[stage] = statistics.mean(r.get(stage, 0.0) for r in steady)
    # The rollout stage holds generation and rewards; the rest of it is mostly the reference
    # model's log-probs (and the old policy's, off-policy). The rest of the step is training.
    summary["logprobs_s"] = summary["rollout_s"] - summary["generate_s"] - summary["rewards_s"]
    summary["train_s"] = summary["step_time_s"] - summary["rollout_s"]
    summary["generate_ms_per_decode_step"] = ms_per_decode_step(steady, "generate_s",
                                                                "completion_tokens_max")
    summary["decompose_ms_per_decode_step"] = ms_per_decode_step(
        steady, "structure_decompose_s", "structure_gsrm_decode_steps")
    if method == "rlkd" and judge_pairs_per_rollout:
        # The call a working GSRM would cause once per generation, on all its rollouts.
        pairs = judge_pairs_per_rollout * config.rollouts_per_generation()
        summary["judge_pairs"] = pairs
        summary["judge_batch_s"] = time_judge(config, result.model, result.tokenizer, pairs)
    return summary


def bench_steps(steps: int, warmup_steps: int, cycle: int) -> tuple[int, int]:
    """(steps to run, warm-up steps left out of the mean) for generation cycles of `cycle`
    steps: the warm-up rounded up to whole cycles, at least the first; the run rounded up to
    whole cycles, at least one after the warm-up."""
    warmup = max(1, -(-warmup_steps // cycle)) * cycle
    return max(-(-steps // cycle) * cycle, warmup + cycle), warmup


def ms_per_decode_step(rows: list[dict[str, Any]], seconds: str, steps: str) -> float | None:
    """Milliseconds a stage spent per batched decode step (one forward pass for the whole
    batch), prefill and bookkeeping included: its seconds over its decode steps, both summed
    over the steps that ran it: the rollouts' decoding against the GSRM's, and one batch size
    against another. None where no row counts the steps."""
    ran = [row for row in rows if row.get(steps)]
    if not ran:
        return None
    return 1000 * sum(row.get(seconds, 0.0) for row in ran) / sum(row[steps] for row in ran)


def time_judge(config: Any, model: Any, tokenizer: Any, pairs: int) -> float:
    """One batched llm-judge call on `pairs` step pairs, timed alone after a warm-up call on
    the same pairs: with random weights the GSRM emits no parseable steps, so the judge never
    runs inside the measured steps."""
    from rlkd_lite.structure.judges import JudgePair
    from rlkd_lite.train.grpo import build_judge

    judge = build_judge(dataclasses.replace(config, judge="llm"), model, tokenizer)
    batch = [JudgePair("problem" if i % 3 else "answer",
                       f"Find how many apples are left after giving away {i} of them.",
                       f"Work out the apples remaining once {i} are given away.")
             for i in range(pairs)]
    judge(batch)  # warm-up: the first call of a new shape compiles
    _sync()
    start = time.perf_counter()
    judge(batch)
    _sync()
    return time.perf_counter() - start


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def run_bench(*, recipe: str, shape: str, variants: list[str], steps: int, warmup_steps: int,
              judge_pairs_per_rollout: int, workdir: Path, set_pairs: list[str] | None = None,
              on_variant: Any = None) -> list[dict[str, Any]]:
    """Build the model once, then run each variant in a fresh Python process. `set_pairs` are
    `--set FIELD=VALUE` overrides for every variant, checked here and parsed in each process
    (they travel as text: a parsed `FIELD=null` is no JSON value)."""
    from rlkd_lite.train.config import load_config, parse_set_overrides

    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        from rlkd_lite.errors import RlkdError

        raise RlkdError(f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS)}")
    overrides = parse_set_overrides(set_pairs or [])
    config = load_config(recipe, overrides)
    model_dir = build_random_model(shape, workdir)
    # The rlkd variant's GSRM is an adapter, as in a real run, unless the recipe or --set
    # names one or clears it.
    gsrm_adapter = (None if "rlkd-unsloth" not in variants or config.gsrm_adapter
                    or "gsrm_adapter" in overrides
                    else build_random_gsrm_adapter(model_dir, config))
    results = []
    for variant in variants:
        out = workdir / f"run-{variant}"
        report = workdir / f"{variant}.json"
        shutil.rmtree(out, ignore_errors=True)  # scratch runs: a bench never resumes
        report.unlink(missing_ok=True)
        job = {"variant": variant, "recipe": recipe, "model_dir": str(model_dir),
               "gsrm_adapter": gsrm_adapter and str(gsrm_adapter), "steps": steps,
               "warmup_steps": warmup_steps, "out_dir": str(out),
               "judge_pairs_per_rollout": judge_pairs_per_rollout,
               "set": set_pairs or []}
        if on_variant:
            on_variant(variant)
        proc = subprocess.run([sys.executable, "-m", "rlkd_lite.train.bench", json.dumps(job),
                               str(report)], env=os.environ.copy())
        if proc.returncode != 0 or not report.is_file():
            results.append({"variant": variant, "error": f"exit code {proc.returncode}"})
            continue
        results.append(json.loads(report.read_text(encoding="utf-8")))
    return results


def check_targets(results: list[dict[str, Any]], targets: BenchTargets
                  ) -> list[tuple[str, str, bool | None]]:
    """(goal, measured, met) for each target the results can speak to. The targets are for the
    reference workload on a GPU: on a CPU (no stage runs at a GPU's relative speeds, and the
    plain-stack variant runs TRL's Triton kernel interpreted) `met` is None, not judged."""
    by = {r["variant"]: r for r in results if "error" not in r}
    judged = all(r.get("device") != "cpu" for r in by.values())
    checks: list[tuple[str, str, bool | None]] = []
    rlkd, plain = by.get("rlkd-unsloth"), by.get("grpo-hf")
    if rlkd and plain:
        ratio = rlkd["step_time_s"] / plain["step_time_s"]
        checks.append((f"RLKD step ≤ {targets.rlkd_vs_plain_step}× plain TRL GRPO step",
                       f"{ratio:.2f}×", ratio <= targets.rlkd_vs_plain_step))
    if rlkd:
        structure, step, note = structure_seconds(rlkd)
        share = structure / step
        checks.append((f"structure reward ≤ {targets.structure_share:.0%} of RLKD step{note}",
                       f"{share:.0%}", share <= targets.structure_share))
        if rlkd.get("peak_gpu_gib") is not None:
            checks.append((f"RLKD peak GPU memory ≤ {targets.peak_memory_gib} GiB",
                           f"{rlkd['peak_gpu_gib']:.2f} GiB",
                           rlkd["peak_gpu_gib"] <= targets.peak_memory_gib))
    grpo = by.get("grpo-unsloth")
    if rlkd and grpo:
        extra = rlkd["step_time_s"] / grpo["step_time_s"] - 1
        checks.append(("structure reward adds ≤ 25% to the Unsloth GRPO step (issue 3)",
                       f"+{extra:.0%}", extra <= 0.25))
    return checks if judged else [(goal, measured, None) for goal, measured, _ in checks]


def structure_seconds(rlkd: dict[str, Any]) -> tuple[float, float, str]:
    """(decompose + judge seconds, step seconds, note) of an RLKD result, per optimizer step.
    When the judge never ran inside the steps (random weights: the GSRM emits no steps) the
    stand-alone judge call stands in for it, spread over the steps that share a generation and
    added to both the structure time and the step."""
    judge, step, note = rlkd["structure_judge_s"], rlkd["step_time_s"], ""
    if judge < 1e-3 and rlkd.get("judge_batch_s"):
        judge = rlkd["judge_batch_s"] / rlkd.get("steps_per_rollout", 1)
        step += judge
        note = f" (judge: stand-alone call on {rlkd['judge_pairs']} pairs added)"
    return rlkd["structure_decompose_s"] + judge, step, note


def _worker(job_json: str, report: str) -> None:
    from rlkd_lite.train.config import parse_set_overrides

    job = json.loads(job_json)
    summary = run_variant(job["variant"], job["recipe"], job["model_dir"], job["steps"],
                          job["out_dir"], job["judge_pairs_per_rollout"],
                          parse_set_overrides(job["set"]), job["gsrm_adapter"],
                          warmup_steps=job["warmup_steps"])
    from rlkd_lite.data.jsonl import write_json_atomic

    write_json_atomic(report, summary)


def default_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="rlkd-bench-"))


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2])
