"""Errors that carry where bad input came from, so the CLI can say file, line and field."""
from __future__ import annotations


class RlkdError(Exception):
    """Base class for errors the CLI reports as a clean message and a non-zero exit."""


class InputError(RlkdError):
    """Bad user input: names the file, the line (1-based) and the field when known."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 field: str | None = None):
        self.path, self.line, self.field, self.problem = path, line, field, message
        where = ":".join(str(p) for p in (path, line) if p is not None)
        what = f"field '{field}': " if field else ""
        super().__init__(f"{where}: {what}{message}" if where else f"{what}{message}")
