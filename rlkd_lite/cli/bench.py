"""`rlkd-lite bench`: the speed and memory benchmark (see rlkd_lite/train/bench.py)."""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from rlkd_lite.cli import app
from rlkd_lite.cli._common import SET_HELP, console, user_errors
from rlkd_lite.data.jsonl import check_writable, check_writable_dir
from rlkd_lite.models.tiny import RANDOM_SHAPES

# Typer shows and checks an Enum's values as the option's choices.
ShapeName = Enum("ShapeName", {name: name for name in RANDOM_SHAPES}, type=str)


# (row title, result key) of the table, in the order of a step.
MEASURES = (
    ("step s", "step_time_s"), ("generate s", "generate_s"),
    ("decompose s", "structure_decompose_s"), ("judge s", "structure_judge_s"),
    ("log-probs s", "logprobs_s"), ("train s", "train_s"), ("tokens/s", "tokens_per_s"),
    ("generate ms/decode step", "generate_ms_per_decode_step"),
    ("decompose ms/decode step", "decompose_ms_per_decode_step"),
    ("first step s", "first_step_s"), ("warm-up steps", "warmup_steps"),
    ("peak GiB", "peak_gpu_gib"),
    ("generate peak GiB", "generate_peak_gib"), ("rewards peak GiB", "rewards_peak_gib"),
)


@app.command()
def bench(
    recipe: str = typer.Option("bench-qwen2.5-1.5b", help="Workload recipe (bench-tiny on a CPU)."),
    shape: ShapeName = typer.Option("qwen2.5-1.5b", help="Random-initialised model shape."),
    variants: str = typer.Option("rlkd-unsloth,grpo-unsloth,grpo-hf",
                                 help="Comma-separated variants to run, each in its own process."),
    steps: int = typer.Option(8, min=1, help="Steps per variant, warm-up included (raised to "
                              "whole generation cycles, at least one after the warm-up)."),
    warmup_steps: int = typer.Option(
        3, min=0,
        help="Steps left out of the mean, rounded up to whole generation cycles; at least the "
             "first (it compiles), so 0 counts as 1. The steps right after it can still run "
             "slow."),
    judge_pairs_per_rollout: int = typer.Option(
        12, min=0,
        help="Step pairs per rollout in the stand-alone llm-judge timing, which stands in for "
             "the judge a working GSRM would call once per generation (12: 4 aligned steps × "
             "meta, sub-problem, answer; 0 skips it)."),
    workdir: Optional[Path] = typer.Option(None, help="Where the model and runs go "
                                           "(default: a new temporary directory)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the results here."),
    set_: list[str] = typer.Option([], "--set", help=f"For every variant. {SET_HELP} E.g. "
                                   "--set decode_graphs=false."),
) -> None:
    """Time RLKD's step by stage against GRPO with and without Unsloth; print and save it."""
    from rich.table import Table

    from rlkd_lite.data.jsonl import write_json_atomic
    from rlkd_lite.train.bench import BenchTargets, check_targets, default_workdir, run_bench
    with user_errors():
        # Refused now, not after minutes of benchmarking.
        if json_out is not None:
            check_writable(json_out, example="bench.json")
        if workdir is not None:
            check_writable_dir(workdir)
        work = workdir or default_workdir()
        work.mkdir(parents=True, exist_ok=True)
        results = run_bench(recipe=recipe, shape=shape.value, variants=variants.split(","),
                            steps=steps, warmup_steps=warmup_steps,
                            judge_pairs_per_rollout=judge_pairs_per_rollout,
                            workdir=work, set_pairs=set_,
                            on_variant=lambda v: console.print(f"[bold]bench:[/] {v}"))
    # One column per variant, one row per measure: readable in a narrow terminal.
    table = Table(title=f"rlkd-lite bench · {shape.value} · {recipe} · mean after the warm-up")
    table.add_column("")
    for r in results:
        table.add_column(r["variant"], justify="right")
    if any("error" in r for r in results):
        table.add_row("failed", *(f"[red]{r['error']}[/]" if "error" in r else "" for r in results))
    for title, key in MEASURES:
        if any(r.get(key) is not None for r in results if "error" not in r):
            table.add_row(title, *("-" if r.get(key) is None else f"{r[key]:.3g}"
                                   for r in results))
    console.print(table)
    for r in results:
        if r.get("gsrm"):
            console.print(f"GSRM: {r['gsrm']} ({r['variant']})")
        if r.get("judge_batch_s") is not None:
            console.print(f"llm judge, {r['judge_pairs']} pairs in one batched call: "
                          f"{r['judge_batch_s']:.3f} s ({r['variant']})")
    checks = check_targets(results, BenchTargets())
    for goal, measured, met in checks:
        mark = ("[dim]not judged on a CPU[/]" if met is None
                else "[green]met[/]" if met else "[red]not met[/]")
        console.print(f"{mark}  {goal}: {measured}")
    if json_out:
        with user_errors():
            write_json_atomic(json_out, {"recipe": recipe, "shape": shape.value, "set": set_,
                                         "results": results,
                                         "targets": [{"goal": g, "measured": m, "met": ok}
                                                     for g, m, ok in checks]})
    if any("error" in r for r in results):
        raise typer.Exit(code=1)
