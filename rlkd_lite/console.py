"""Shared rich console helpers for long work (library code may show progress; the CLI prints)."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console

console = Console(stderr=True)


@contextlib.contextmanager
def status(message: str) -> Iterator[None]:
    """A spinner while `message` is in progress, then a tick with the elapsed time."""
    import time

    start = time.perf_counter()
    with console.status(message):
        yield
    console.print(f"[green]✓[/] {message} ({time.perf_counter() - start:.1f}s)", highlight=False)
