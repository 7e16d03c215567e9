"""`rlkd-lite eval`: accuracy, pass@k, structure reward and length on held-out problems, and
`--compare` to put several evaluations side by side."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from rlkd_lite.cli import app
from rlkd_lite.cli._common import console, err_console, user_errors
from rlkd_lite.cli.score import DecomposerName, JudgeName
from rlkd_lite.cli.train import DEFAULT_RECIPE
from rlkd_lite.errors import RlkdError
from rlkd_lite.train.config import MAX_SEED


def _parse_ks(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise RlkdError(f"--k takes comma-separated integers like 1,4,8, not {text!r}") from None


@app.command("eval")
def eval_command(
    evals: Annotated[list[Path] | None, typer.Argument(
        help="With --compare: eval.json files or run directories holding one.",
        show_default=False)] = None,
    compare: Annotated[bool, typer.Option(
        "--compare", help="Print the given evaluations side by side instead of evaluating "
                          "(e.g. base, sft, grpo, rlkd).")] = False,
    model: Annotated[str | None, typer.Option(
        help="Base model: alias (qwen2.5-1.5b, smollm2-135m, ...), local path or Hub repo id. "
             "Default: the run's model when --adapter is a run directory, else the recipe's.",
        show_default=False)] = None,
    adapter: Annotated[str | None, typer.Option(
        help="Trained student: a run directory (its config.yaml then gives the system prompt, "
             "model, data and lengths, and its training problems are refused as eval problems) "
             "or an adapter directory. Default: the bare base model.", show_default=False)] = None,
    recipe: Annotated[str, typer.Option(
        help="Recipe giving the system prompt and defaults when --adapter is not a run "
             "directory.")] = DEFAULT_RECIPE,
    data: Annotated[str | None, typer.Option(
        help="synthetic (offline; its test split never overlaps training), gsm8k or "
             "gsm8k-subset (the Hub's test split), or a JSONL file of problems (teacher "
             "traces optional: only the structure reward needs them). Default: the run's or "
             "recipe's data, test split.",
        show_default=False)] = None,
    teacher: Annotated[str | None, typer.Option(
        help="JSONL of teacher traces paired with the problems by id.", show_default=False)] = None,
    limit: Annotated[int | None, typer.Option(
        min=1, help="Evaluate the first N problems (synthetic and gsm8k-subset default to 256).",
        show_default=False)] = None,
    seed: Annotated[int, typer.Option(
        min=0, max=MAX_SEED, help="Chooses the synthetic test problems, and seeds sampling.")] = 0,
    samples: Annotated[int, typer.Option(
        min=0, help="Sampled completions per problem for pass@k (0: greedy accuracy only).")] = 0,
    k: Annotated[str | None, typer.Option(
        "--k", help="pass@k values, comma-separated, each at most --samples. Default: those of "
                    "1,4,8 up to --samples.", show_default=False)] = None,
    temperature: Annotated[float | None, typer.Option(
        help="Sampling temperature for pass@k, above 0 when --samples is above 0. Default: "
             "the run's or recipe's.",
        show_default=False)] = None,
    max_new_tokens: Annotated[int | None, typer.Option(
        min=1, help="Longest completion in tokens. Default: the run's or recipe's "
                    "max_completion_length.", show_default=False)] = None,
    batch_size: Annotated[int, typer.Option(
        min=1, help="Sequences generated per call (prompts x samples).")] = 16,
    decomposer: Annotated[DecomposerName, typer.Option(
        help="How reasoning becomes steps for the structure reward: auto (tagged when the text "
             "has step tags, else rules), tagged, rules, or gsrm (the model with --gsrm-adapter, "
             "or the bare base few-shot, with the recipe's gsrm_max_new_tokens and "
             "gsrm_batch_size).")] = DecomposerName.auto,
    judge: Annotated[JudgeName, typer.Option(
        help="How steps are compared: lexical (token overlap, numbers by value), exact, or llm "
             "(the model's yes/no probabilities, the recipe's judge_batch_size pairs a pass)."
    )] = JudgeName.lexical,
    normalize: Annotated[bool, typer.Option(
        help="Divide each structure reward by the teacher's step count (0..1) instead of the "
             "authors' plain sum.")] = False,
    gsrm_adapter: Annotated[str | None, typer.Option(
        help="Trained gsrm adapter (or its run directory) for --decomposer gsrm / --judge llm.",
        show_default=False)] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Where to write eval.json. Default: RUN/eval.json when --adapter "
                               "is a run directory or its adapter, CHECKPOINT/eval.json for one "
                               "of its checkpoints, else ./eval.json.",
        show_default=False)] = None,
    show: Annotated[int, typer.Option(
        min=0, help="Print the N problems with the lowest structure reward as aligned "
                    "teacher/student step tables.")] = 0,
) -> None:
    """Evaluate a model (and a trained adapter) on held-out problems, or compare evaluations."""
    from rlkd_lite.eval.evaluate import (EvalSettings, comparison_warnings, eval_label, evaluate,
                                         read_eval, results_table, scored_pair)

    with user_errors():
        if compare:
            if not evals:
                raise RlkdError("--compare needs eval.json files or run directories to compare")
            results = [read_eval(path) for path in evals]
            labels = [eval_label(path) for path in evals]
            console.print(results_table(results, labels))
            for warning in comparison_warnings(results, labels):
                err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
            return
        if evals:
            raise RlkdError("positional arguments are only for --compare; evaluate with "
                            "--model/--adapter/--data")
        result = evaluate(EvalSettings(
            recipe=recipe, model=model, adapter=adapter, data=data, teacher=teacher, limit=limit,
            seed=seed, samples=samples, ks=_parse_ks(k), temperature=temperature,
            max_new_tokens=max_new_tokens, batch_size=batch_size, decomposer=decomposer.value,
            judge=judge.value, normalize=normalize, gsrm_adapter=gsrm_adapter), output=output)
    from rlkd_lite.eval.render import pair_table

    console.print(results_table([result], [eval_label(result.path)]))
    # Without teacher steps (no trace in the data) a structure of 0 says nothing: not shown.
    with_teacher = [item for item in result.items if item["teacher_steps"]]
    for item in sorted(with_teacher, key=lambda item: item["structure"])[:show]:
        console.print(pair_table(scored_pair(item)))
    # soft_wrap: the path stays on one line, to be copy-pasted
    console.print(f"written to {escape(str(result.path))}", highlight=False, soft_wrap=True)
