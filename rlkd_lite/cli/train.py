"""`rlkd-lite train`: a recipe, CLI overrides, one call into rlkd_lite.train.run."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from rlkd_lite.cli import app
from rlkd_lite.cli._common import SET_HELP, console, exit_interrupted, user_errors
from rlkd_lite.train.config import MAX_SEED

DEFAULT_RECIPE = "rlkd-qwen2.5-1.5b-gsm8k"


@app.command()
def train(
    recipe: str = typer.Option(DEFAULT_RECIPE, help="Recipe name in recipes/ or a YAML path. "
                               "Use tiny-cpu for the offline CPU demo."),
    model: Optional[str] = typer.Option(None, help="Model alias (qwen2.5-0.5b/1.5b/3b/7b, "
                                        "smollm2-135m), local path or Hub repo id."),
    data: Optional[str] = typer.Option(None, help="synthetic, gsm8k-subset, or a problems JSONL."),
    teacher: Optional[str] = typer.Option(None, help="JSONL of teacher traces, paired by id."),
    subset: Optional[int] = typer.Option(None, min=1, help="Use the first N problems."),
    method: Optional[str] = typer.Option(None, help="rlkd, grpo (outcome rewards only) or sft."),
    backend: Optional[str] = typer.Option(None, help="unsloth or hf (transformers+PEFT)."),
    decomposer: Optional[str] = typer.Option(None, help="gsrm, rules or tagged."),
    judge: Optional[str] = typer.Option(None, help="llm, lexical or exact."),
    gsrm_adapter: Optional[str] = typer.Option(None, help="Trained gsrm adapter directory."),
    init_adapter: Optional[str] = typer.Option(None, help="Start the student from this adapter "
                                               "or run directory (e.g. an SFT run)."),
    output_dir: Optional[str] = typer.Option(None, help="Run directory."),
    max_steps: Optional[int] = typer.Option(None, min=1, help="Optimizer steps."),
    seed: Optional[int] = typer.Option(None, min=0, max=MAX_SEED, help="Random seed."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    resume: bool = typer.Option(False, help="Continue the run in --output-dir from its last "
                                "checkpoint."),
    dry_run: bool = typer.Option(False, help="Check and print the resolved configuration, "
                                 "then exit (no data or model is loaded)."),
) -> None:
    """Train a student with RLKD (or the grpo / sft baselines) from a recipe."""
    with user_errors():
        from rlkd_lite.train.config import load_config, parse_set_overrides

        overrides = parse_set_overrides(set_)
        overrides.update({k: v for k, v in {
            "model": model, "data": data, "teacher": teacher, "subset": subset,
            "method": method, "backend": backend, "decomposer": decomposer, "judge": judge,
            "gsrm_adapter": gsrm_adapter, "init_adapter": init_adapter,
            "output_dir": output_dir, "max_steps": max_steps, "seed": seed}.items()
            if v is not None})
        config = load_config(recipe, overrides)
        from rlkd_lite.data.jsonl import check_writable_dir
        from rlkd_lite.train.run import check_run_config, run_training

        # Before data loads, and for --dry-run too (the run checks it again as it locks it).
        check_writable_dir(config.output_dir)
        if dry_run:
            import yaml

            check_run_config(config)  # what the run itself checks before loading anything
            typer.echo(yaml.safe_dump(config.to_dict(), sort_keys=False, width=100))
            return
        result = run_training(config, resume=resume)
    from rich.table import Table

    from rlkd_lite.train.config import REWARDS
    from rlkd_lite.train.run_dir import RunDir

    ended = (f"interrupted at step {result.steps} of {config.max_steps}" if result.interrupted
             else f"finished: {result.steps} steps")
    table = Table(title=f"{config.method} run {ended} in {result.seconds:.0f} s")
    table.add_column("metric")
    table.add_column("first quarter", justify="right")
    table.add_column("last quarter", justify="right")
    trend = RunDir(result.run_dir).trend(["reward", *REWARDS, "loss", "step_time_s",
                                          "tokens_per_s", "completion_tokens_mean",
                                          "completion_cut_off"])
    for key, (first, last) in trend.items():
        table.add_row(key, f"{first:.4g}", f"{last:.4g}")
    console.print(table)
    console.print(f"run directory: {result.run_dir}  ·  student adapter: "
                  f"{Path(result.run_dir) / 'adapter'}", highlight=False)
    if result.gsrm_unchanged is not None:
        console.print(f"gsrm adapter bit-identical after training: {result.gsrm_unchanged}")
    if result.interrupted:
        exit_interrupted("train", result.run_dir, result.steps, config.max_steps,
                         after=f"the student adapter above is the student at step "
                               f"{result.steps}, usable as it is")
