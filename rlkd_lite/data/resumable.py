"""Resumable outputs of long per-item jobs (`teach`, `gsrm label`).

Accepted records go to one JSONL file, rejected ones (with a reason) to a second, each line
appended and synced to disk as soon as its item is decided: a crash loses at most the items in
flight, and a re-run skips every id already accepted or rejected. Items rejected for a reason
that may pass on a second try (a request that failed) are always tried again; the other rejects
only when asked (`retry_rejected`, e.g. after raising `teach --samples`). The rejects file is a
log: a retried item's earlier lines stay, and an id in the output counts as accepted.
"""
from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from rlkd_lite.data.jsonl import append_jsonl, check_writable, read_jsonl, write_jsonl_atomic
from rlkd_lite.data.problems import same_question
from rlkd_lite.errors import InputError

REQUEST_FAILED = "request_failed"
"""Reject reason of an item whose request to a model or endpoint failed after its retries."""
RETRYABLE_REASONS = frozenset({REQUEST_FAILED})
"""Reasons a re-run tries again instead of skipping."""

Item = TypeVar("Item")


def default_rejects_path(path: str | os.PathLike[str]) -> Path:
    """`out.jsonl` -> `out.rejects.jsonl`, next to it."""
    path = Path(path)
    return path.with_name(f"{path.name.removesuffix('.jsonl')}.rejects.jsonl")


class ResumableOutput:
    """An output JSONL and its rejects JSONL, with counts of what this run decided.

    Every accepted row must carry a string "id". Lines of an earlier run that cannot be read
    (a line torn by a crash) are removed from the file, so that it stays readable as a whole,
    and their items are redone; `torn_lines` counts them. A file that is not this job's
    output is refused, never rewritten, as is a path that cannot be written (before any work).
    With `retry_rejected`, items an earlier run rejected are pending again.
    """

    def __init__(self, path: str | os.PathLike[str],
                 rejects_path: str | os.PathLike[str] | None = None, *,
                 retry_rejected: bool = False):
        self.path = Path(path)
        self.rejects_path = Path(rejects_path) if rejects_path else default_rejects_path(path)
        if self.path.resolve() == self.rejects_path.resolve():
            raise InputError("the output and the rejects file must differ",
                             path=str(self.rejects_path))
        check_writable(self.path)
        check_writable(self.rejects_path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rejects_path.parent.mkdir(parents=True, exist_ok=True)
        self.torn_lines = 0
        accepted = self._earlier_rows(self.path)
        # Where each id was accepted, and for which question (checked by `pending`).
        self._accepted_question = {str(row["id"]): (line, row.get("question"))
                                   for line, row in accepted if row.get("id") is not None}
        self.earlier_accepted = len(self._accepted_question)
        rejected = {str(row["id"]) for _, row in self._earlier_rows(self.rejects_path)
                    if row.get("id") is not None and row.get("reason") not in RETRYABLE_REASONS}
        # Earlier rejects still standing (an id also in the output was accepted by a later
        # run), skipped unless retried.
        self._earlier_rejected = (set() if retry_rejected
                                  else rejected - set(self._accepted_question))
        self.decided: set[str] = set(self._accepted_question) | self._earlier_rejected
        self.accepted = 0
        self.rejected: Counter[str] = Counter()
        self.skipped = 0
        self.skipped_rejected = 0  # of `skipped`, those an earlier run rejected

    def pending(self, items: Sequence[Item], item_id: Callable[[Item], str],
                item_question: Callable[[Item], str] | None = None) -> list[Item]:
        """The items whose id no earlier run decided (the others are counted as skipped).

        With `item_question`: an item whose id an earlier run accepted for another question is
        an error, not a skip (ids repeat across data sources and seeds)."""
        for item in items if item_question is not None else ():
            line, question = self._accepted_question.get(item_id(item), (0, None))
            if isinstance(question, str) and not same_question(question, item_question(item)):
                raise InputError(f"id {item_id(item)!r} was written for another question "
                                 f"({question[:60]!r}): this output holds other problems "
                                 f"(another --data, --subset or --seed?); choose another "
                                 f"--output", path=str(self.path), line=line, field="question")
        todo = [item for item in items if item_id(item) not in self.decided]
        self.skipped += len(items) - len(todo)
        self.skipped_rejected += sum(item_id(item) in self._earlier_rejected for item in items)
        return todo

    def accept(self, row: dict[str, Any]) -> None:
        append_jsonl(self.path, row)
        self.decided.add(row["id"])
        self.accepted += 1

    def reject(self, item_id: str | None, reason: str, detail: str, **extra: Any) -> None:
        """Record why an item was not accepted; `item_id` None for input with no readable id."""
        append_jsonl(self.rejects_path, {"id": item_id, "reason": reason, "detail": detail,
                                         **extra})
        if item_id is not None and reason not in RETRYABLE_REASONS:
            self.decided.add(item_id)
        self.rejected[reason] += 1

    def tally(self) -> str:
        """This run's counts in a few words, for a progress bar."""
        return f"{self.accepted} kept, {sum(self.rejected.values())} rejected"

    def summary(self) -> dict[str, Any]:
        """What this run did: accepted, rejected (per reason), skipped as already decided (and
        how many of those were earlier rejects); and how many records earlier runs accepted."""
        return {"accepted": self.accepted, "rejected": dict(self.rejected),
                "skipped": self.skipped, "skipped_rejected": self.skipped_rejected,
                "earlier_accepted": self.earlier_accepted, "torn_lines_removed": self.torn_lines,
                "output": str(self.path), "rejects": str(self.rejects_path)}

    def _earlier_rows(self, path: Path) -> list[tuple[int, dict[str, Any]]]:
        """(line, row) of what an earlier run wrote to `path`, numbered as the file now stands.

        A line torn by a crash is counted and cut out of the file (atomically): only the last
        line, the start of a record ("{...") cut short, in a file whose other lines are all
        records with an "id". Anything else is someone else's file: an InputError, and the file
        is left untouched."""
        content = path.read_bytes() if path.is_file() else b""
        if not content.strip():
            return []
        unreadable: list[InputError] = []
        rows = list(read_jsonl(path, on_error=unreadable.append))
        if not unreadable:
            return rows
        lines = content.split(b"\n")
        last = max(n for n, line in enumerate(lines, 1) if line.strip())
        # A crash tears the line being appended: the last one, a record ("{...") cut short.
        # (Every run cuts it on opening, so an earlier one cannot sit under later lines.)
        torn = [e for e in unreadable if e.line == last
                and lines[e.line - 1].lstrip().startswith(b"{")
                and e.problem.startswith(("not valid JSON", "not UTF-8"))]
        foreign = [e for e in unreadable if e not in torn]
        if foreign or not all("id" in row for _, row in rows):
            first = (foreign or unreadable)[0]
            raise InputError(f"{first.problem}, and the file does not look like this job's "
                             f"output: choose another output file", path=str(path),
                             line=first.line)
        self.torn_lines += len(torn)
        write_jsonl_atomic(path, [row for _, row in rows])
        return list(enumerate((row for _, row in rows), 1))
