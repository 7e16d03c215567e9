"""What every command shares: one console, and clean exits for the errors users cause."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

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
