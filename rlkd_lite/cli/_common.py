"""What every command shares: one console, and clean exits for the errors users cause."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer
from rich.console import Console
from rich.markup import escape

from rlkd_lite.errors import RlkdError

console = Console()
err_console = Console(stderr=True)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn RlkdError (bad input, unknown alias, missing file) into a red message and exit 1."""
    try:
        yield
    except RlkdError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(code=1) from None
