"""`rlkd-lite gsrm label` and `rlkd-lite gsrm train`: the GSRM adapter, from labels to weights."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from rlkd_lite.cli import app
from rlkd_lite.cli._common import (SET_HELP, check_job_outputs, console, exit_interrupted,
                                   user_errors)
from rlkd_lite.cli._jobs import (ApiBase, ApiKeyEnv, ApiModel, Backoff, Concurrency, Rejects,
                                 Retries, RetryRejected, Timeout, make_client, finish_job)
from rlkd_lite.data.openai_client import DEFAULT_API_KEY_ENV
from rlkd_lite.train.config import MAX_SEED

gsrm_app = typer.Typer(
    help="The GSRM adapter: label decomposition examples, then train the adapter on them.",
    no_args_is_help=True)
app.add_typer(gsrm_app, name="gsrm")

DEFAULT_GSRM_RECIPE = "gsrm-qwen2.5-1.5b"


@gsrm_app.command()
def label(
    source: Annotated[str, typer.Option(
        "--from", help="Where the steps come from: rules (the rules decomposer, for GSM8K-style "
                       "solutions), api (an OpenAI-compatible endpoint, few-shot prompt), or a "
                       "PATH.jsonl of your own labels {id?, question, reasoning, steps} to "
                       "validate (steps: [{meta, query, answer}] or tagged text).")],
    output: Annotated[str, typer.Option(
        help="Labelled examples, JSONL {id, question, reasoning, steps, source}. Appended to: "
             "re-running skips ids already accepted or rejected, except failed requests (see "
             "--retry-rejected).")],
    data: Annotated[str, typer.Option(
        help="Problems with reasoning to label (rules, api): synthetic, gsm8k, gsm8k-subset, "
             "or a JSONL file (e.g. the output of `teach`).")] = "synthetic",
    teacher: Annotated[Optional[str], typer.Option(
        help="JSONL of teacher traces paired with --data by id (e.g. the output of `teach`).")
    ] = None,
    subset: Annotated[Optional[int], typer.Option(min=1, help="Use the first N problems.")] = None,
    split: Annotated[str, typer.Option(help="train or test (synthetic and gsm8k).")] = "train",
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED,
                                      help="Seed of the synthetic problems.")] = 0,
    api_base: ApiBase = None,
    api_model: ApiModel = None,
    api_key_env: ApiKeyEnv = DEFAULT_API_KEY_ENV,
    max_tokens: Annotated[int, typer.Option(
        min=1, help="API: longest reply, in tokens.")] = 1024,
    concurrency: Concurrency = 8,
    timeout: Timeout = 120.0,
    retries: Retries = 4,
    backoff: Backoff = 1.0,
    rejects: Rejects = None,
    retry_rejected: RetryRejected = False,
) -> None:
    """Make GSRM training examples: reasoning paired with its tagged steps."""
    with user_errors():
        from rlkd_lite.data.resumable import ResumableOutput
        from rlkd_lite.errors import InputError
        from rlkd_lite.train import gsrm

        check_job_outputs(output, rejects,
                          {"--data": data, "--teacher": teacher} if source in ("rules", "api")
                          else {"--from": source})
        out = ResumableOutput(output, rejects, retry_rejected=retry_rejected)
        if source in ("rules", "api"):
            from rlkd_lite.data.problems import load_problems

            problems = load_problems(data, subset=subset, seed=seed, split=split,
                                     teacher=teacher)
            if source == "rules":
                summary = gsrm.label_with_rules(problems, out)
            else:
                if api_base is None:
                    raise InputError("--from api needs --api-base (and --api-model)")
                client = make_client(api_base, api_model, api_key_env, concurrency, timeout,
                                     retries, backoff)
                summary = gsrm.label_with_api(problems, client, out, max_tokens=max_tokens)
        elif source.lower().endswith(".jsonl"):
            summary = gsrm.label_from_file(source, out)
        else:
            raise InputError(f"--from {source!r}: expected rules, api or a path to a .jsonl file")
    finish_job("gsrm label", summary)


@gsrm_app.command()
def train(
    recipe: Annotated[str, typer.Option(
        help="GSRM recipe in recipes/ or a YAML path; it extends the student's recipe, whose "
             "model, quantisation and LoRA shape the adapter shares. gsrm-tiny-cpu for a CPU.")
    ] = DEFAULT_GSRM_RECIPE,
    examples: Annotated[Optional[str], typer.Option(
        help="Labelled examples, JSONL (from `rlkd-lite gsrm label`).")] = None,
    model: Annotated[Optional[str], typer.Option(
        help="Base model, if not the recipe's: it must be the student's (alias, path or Hub "
             "id).")] = None,
    output_dir: Annotated[Optional[str], typer.Option(help="Run directory.")] = None,
    max_steps: Annotated[Optional[int], typer.Option(min=1, help="Optimizer steps.")] = None,
    seed: Annotated[Optional[int], typer.Option(
        min=0, max=MAX_SEED, help="Seed of the held-out split, LoRA init and data order.")] = None,
    set_: Annotated[list[str], typer.Option(
        "--set", help=f"{SET_HELP} E.g. --set held_out=0.1.")] = [],
    resume: Annotated[bool, typer.Option(
        help="Continue the run in --output-dir from its last checkpoint.")] = False,
    dry_run: Annotated[bool, typer.Option(
        help="Print the resolved configuration and exit.")] = False,
) -> None:
    """Train the gsrm LoRA adapter on labelled examples, then score it on held-out ones."""
    with user_errors():
        from rlkd_lite.data.jsonl import check_writable_dir
        from rlkd_lite.train.config import parse_set_overrides
        from rlkd_lite.train.gsrm import GsrmTrainConfig, load_gsrm_config

        overrides = parse_set_overrides(set_, GsrmTrainConfig)
        overrides.update({key: value for key, value in {
            "examples": examples, "model": model, "output_dir": output_dir,
            "max_steps": max_steps, "seed": seed}.items() if value is not None})
        config = load_gsrm_config(recipe, overrides)
        # Before the examples are read, and for --dry-run too (the run checks it as it locks it).
        check_writable_dir(config.output_dir)
        if dry_run:
            import yaml

            from rlkd_lite.train.run import check_run_config

            check_run_config(config)  # what the run itself checks before loading anything
            console.print(yaml.safe_dump(config.to_dict(), sort_keys=False), highlight=False,
                          markup=False)
            return
        from rlkd_lite.train.gsrm import train_gsrm

        result = train_gsrm(config, resume=resume)
    from rich.table import Table

    ended = (f"interrupted at step {result.steps} of {config.max_steps}" if result.interrupted
             else "trained")
    table = Table(title=f"gsrm adapter {ended}", show_header=False)
    table.add_row("adapter", str(result.adapter))
    table.add_row("steps", str(result.steps))
    table.add_row("time", f"{result.seconds:.1f} s")
    if result.dropped_too_long:
        table.add_row("examples over max_seq_length (left out)", str(result.dropped_too_long))
    for key, value in result.evaluation.items():
        table.add_row(f"held-out {key}", f"{value:.4g}" if isinstance(value, float) else str(value))
    if not result.interrupted:
        table.add_row("evaluation", str(result.run_dir / "eval.json"))
    console.print(table)
    if result.interrupted:
        exit_interrupted("gsrm train", result.run_dir, result.steps, config.max_steps,
                         detail=", not evaluated")
    console.print(f"use it: rlkd-lite train --gsrm-adapter {result.run_dir}", highlight=False,
                  markup=False)
