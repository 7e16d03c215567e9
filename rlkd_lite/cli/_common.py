"""What every command shares: one console, and clean exits for the errors users cause."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import typer
from rich.markup import escape

from rlkd_lite.console import console as err_console  # progress and errors go to stderr
from rlkd_lite.console import make_console
from rlkd_lite.errors import RlkdError

console = make_console()

SET_HELP = ("Override a recipe field: FIELD=VALUE (repeatable; values parsed as YAML). "
            "FIELD.KEY=VALUE sets one entry of a mapping such as reward_weights, FIELD={...} "
            "replaces the whole mapping, FIELD=null clears an optional field.")
"""The help of every command's --set (`parse_set_overrides` reads them all alike)."""


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn RlkdError (bad input, unknown alias, missing file) into a red message and exit 1."""
    try:
        yield
    except RlkdError as exc:
        # soft_wrap: a path or a file:line reference must stay on one line to be copy-pasted
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False,
                          soft_wrap=True)
        raise typer.Exit(code=1) from None


def check_job_outputs(output: str, rejects: str | None, inputs: dict[str, str | None]) -> None:
    """Refuse a `teach` / `gsrm label` output or rejects file that is one of the job's input
    files: the job appends to both and removes torn lines from them, and an output that already
    holds every id would make the job skip all. `inputs` maps each option (e.g. "--data") to its
    value (a built-in data name such as synthetic is no file, so it never matches)."""
    from rlkd_lite.data.jsonl import check_not_input
    from rlkd_lite.data.resumable import default_rejects_path

    for path in (output, rejects or default_rejects_path(output)):
        check_not_input(path, inputs)


def exit_interrupted(command: str, run_dir: Path, steps: int, max_steps: int, *,
                     detail: str = "", after: str = "") -> NoReturn:
    """After Ctrl-C stopped a run: where it stands, the command that continues it, exit 130.

    The command names the run's own config.yaml, a complete recipe of this run, so resuming
    with it cannot be refused as a changed configuration whatever flags started the run.
    `detail` goes after "step N of M", `after` on a line of its own."""
    import shlex

    from rlkd_lite.train.run_dir import RunDir

    recipe = escape(shlex.quote(str(RunDir(Path(run_dir)).config)))
    console.print(f"[yellow]interrupted at step {steps} of {max_steps}{detail}; continue with: "
                  f"rlkd-lite {command} --recipe {recipe} --resume[/]"
                  + (f"\n{after}" if after else ""), highlight=False, soft_wrap=True)
    raise typer.Exit(code=130)  # 128 + SIGINT, as a shell reports a Ctrl-C'd command
