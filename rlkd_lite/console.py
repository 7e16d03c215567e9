"""Shared rich console helpers for long work (library code may show progress; the CLI prints)."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from rich.progress import Progress

LOG_WIDTH = 160
"""Columns for output that goes to a file or a pipe: rich's default there is 80, which cuts
tables apart in logs."""


def make_console(stderr: bool = False) -> Console:
    """A console for stdout or stderr; without a terminal (a log file, CI) and without COLUMNS
    it is LOG_WIDTH wide."""
    made = Console(stderr=stderr)
    if made.is_terminal or made.is_jupyter or os.environ.get("COLUMNS"):
        return made
    return Console(stderr=stderr, width=LOG_WIDTH)


console = make_console(stderr=True)


@contextlib.contextmanager
def status(message: str) -> Iterator[None]:
    """A spinner while `message` is in progress, then a tick with the elapsed time."""
    import time

    start = time.perf_counter()
    if console.is_jupyter:
        # A live spinner redirects stderr to itself; in Jupyter a tqdm bar written meanwhile
        # (transformers' "Loading weights") then recurses without end. Say it plainly instead.
        console.print(f"{message} ...", highlight=False)
        yield
    else:
        with console.status(message):
            yield
    console.print(f"[green]✓[/] {message} ({time.perf_counter() - start:.1f}s)", highlight=False)


def item_progress(title: str) -> Progress:
    """A rich progress bar for a loop over items: title, bar, done/total, the task's
    description (a short running tally) and the time left. Use as a context manager."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeRemainingColumn)

    return Progress(TextColumn(f"[bold]{title}[/]"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.description}"), TimeRemainingColumn(), console=console)
