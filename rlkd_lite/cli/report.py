"""`rlkd-lite report RUN_DIR`: a self-contained HTML report of a training run."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from rlkd_lite.cli import app
from rlkd_lite.cli._common import console, user_errors
from rlkd_lite.data.jsonl import check_writable


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(
        help="Run directory written by `rlkd-lite train` (holds metrics.jsonl).")],
    samples: Annotated[int, typer.Option(
        min=0, help="Sample completions to show (the newest of each of N different "
                    "questions) with their teacher/student step alignment.")] = 3,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Where to write the HTML. Default: RUN_DIR/report.html.",
        show_default=False)] = None,
) -> None:
    """Training curves, the eval table and aligned sample steps of a run, as one HTML file."""
    with user_errors():
        if output is not None:  # refused before the run's logs are read and drawn
            check_writable(output, example="report.html")
        from rlkd_lite.eval.report import build_report

        path = build_report(run_dir, samples=samples, output=output)
    console.print(f"report written to {escape(str(path))}", highlight=False)
