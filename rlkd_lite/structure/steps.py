"""The step format: a reasoning path as (meta-reasoning, sub-problem, answer) steps."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    """One step of a reasoning path (DESIGN.md section 1)."""

    meta: str
    """Why this sub-problem is next; must not state the answer."""
    query: str
    """The one sub-problem this step solves."""
    answer: str
    """The short answer to the sub-problem, no reasoning."""
