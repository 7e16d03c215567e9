"""`rlkd-lite score`: structure score of student traces against teacher traces."""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from rlkd_lite.cli import app
from rlkd_lite.cli._common import console, err_console, user_errors
from rlkd_lite.data.jsonl import check_not_input, check_writable
from rlkd_lite.errors import InputError
from rlkd_lite.eval.alignment import pair_files, score_pairs, write_report
from rlkd_lite.eval.render import pair_table, summary_table
from rlkd_lite.structure.decomposers import DECOMPOSER_NAMES, make_decomposer
from rlkd_lite.structure.judges import JUDGE_NAMES, LexicalJudge, make_judge

_PROBLEMS_SHOWN = 5
"""How many skipped-line problems --skip-bad prints before saying "and N more"."""


# Typer shows and checks an Enum's values as the option's choices.
DecomposerName = Enum("DecomposerName", {name: name for name in DECOMPOSER_NAMES}, type=str)
JudgeName = Enum("JudgeName", {name: name for name in JUDGE_NAMES}, type=str)


@app.command()
def score(
    teacher: Annotated[Path, typer.Argument(
        help="Teacher traces, JSONL: one {id?, question?, reasoning} or {id?, steps} per line.")],
    student: Annotated[Path, typer.Argument(
        help="Student traces in the same format; records pair by id, or by line order "
             "without ids.")],
    decomposer: Annotated[DecomposerName, typer.Option(
        help="How reasoning text becomes steps: auto = tagged when the text has step tags, else "
             "rules (GSM8K-style computations); gsrm = the model with the gsrm adapter "
             "(needs --model).")] = DecomposerName.auto,
    judge: Annotated[JudgeName, typer.Option(
        help="How two steps are compared: exact (normalised equality), lexical (content-word "
             f"overlap F1 >= {LexicalJudge.DEFAULT_THRESHOLD}, numbers by value), llm (the model "
             "answers yes/no; needs --model).")] = JudgeName.lexical,
    normalize: Annotated[bool, typer.Option(
        help="Divide each reward by the teacher's step count (0..1) instead of the authors' "
             "plain sum.")] = False,
    model: Annotated[str | None, typer.Option(
        help="Base model (Hub name or local path) for --decomposer gsrm and --judge "
             "llm.")] = None,
    adapter: Annotated[str | None, typer.Option(
        help="Trained gsrm LoRA adapter directory to load on --model (default: the bare "
             "base model, which decomposes from a few-shot prompt and judges zero-shot).")
    ] = None,
    json_out: Annotated[Path | None, typer.Option(
        "--json",
        help="Write the report (summary and per-pair rewards) to this JSON file.")] = None,
    show: Annotated[int, typer.Option(
        min=0,
        help="Print the N lowest-scoring pairs as aligned teacher/student step tables.")] = 0,
    skip_bad: Annotated[bool, typer.Option(
        help="Skip bad lines and unpaired records (counted and listed) instead of stopping at "
             "the first.")] = False,
) -> None:
    """Score how well student traces reproduce the step structure of teacher traces."""
    with user_errors():
        # Bad files and an unwritable report fail here, before minutes of model work.
        paired = pair_files(teacher, student, skip_bad=skip_bad)
        if json_out is not None:
            check_writable(json_out, example="report.json")
            check_not_input(json_out, {"TEACHER": teacher, "STUDENT": student})
        model_options = {}
        needs_model = [option for option, chosen in (
                           ("--decomposer gsrm", decomposer is DecomposerName.gsrm),
                           ("--judge llm", judge is JudgeName.llm)) if chosen]
        if needs_model:
            if model is None:
                raise InputError(f"--model is required by {' and '.join(needs_model)}")
            from rlkd_lite.models.loading import GSRM_ADAPTER, load_inference_model

            loaded, tokenizer = load_inference_model(model, adapter=adapter)
            model_options = {"model": loaded, "tokenizer": tokenizer,
                             "adapter": GSRM_ADAPTER if adapter else None}
        elif model is not None or adapter is not None:
            err_console.print("[yellow]warning:[/] --model and --adapter are ignored: only "
                              "--decomposer gsrm and --judge llm run a model", highlight=False)
        chosen_decomposer = make_decomposer(
            decomposer.value, **(model_options if decomposer is DecomposerName.gsrm else {}))
        chosen_judge = make_judge(judge.value, **(model_options if judge is JudgeName.llm else {}))
        result = score_pairs(paired, chosen_decomposer, chosen_judge, normalize=normalize)
        for problem in result.problems[:_PROBLEMS_SHOWN]:
            err_console.print(f"[yellow]skipped:[/] {escape(str(problem))}", highlight=False)
        if len(result.problems) > _PROBLEMS_SHOWN:
            err_console.print(
                f"[yellow]skipped:[/] and {len(result.problems) - _PROBLEMS_SHOWN} more")
        if json_out is not None:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            write_report(json_out, result)
        console.print(summary_table(result.summary()))
        for pair in result.lowest(show):
            console.print(pair_table(pair))
        if json_out is not None:
            console.print(f"report written to {escape(str(json_out))}", highlight=False)
