"""Structure score of student traces against teacher traces: the logic of `rlkd-lite score`.

A trace file is JSONL, one record per line:
    {"id": "q1", "question": "...", "reasoning": "free text or tagged steps"}
    {"id": "q2", "steps": [{"meta": "...", "query": "...", "answer": "..."}, ...]}
"id" (string or integer) and "question" are optional; a record needs "reasoning" or "steps"
(when both are given, "steps" is used as is and "reasoning", which must still be text, is
not decomposed). A teacher's trace must not be empty (there would be nothing to reproduce); a
student's may be (it scores 0). Records
pair by id when both files have ids (ids compare as text, so 7 and "7" are one id), and by line
order when neither has. Pure Python: no model library is imported here.
"""
from __future__ import annotations

import contextlib
import gc
import json
import statistics
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlkd_lite.data.jsonl import json_type, read_jsonl, write_text_atomic
from rlkd_lite.data.problems import same_question, steps_field, text_field
from rlkd_lite.errors import InputError, RlkdError
from rlkd_lite.structure.decomposers import DecomposeInput, Decomposer
from rlkd_lite.structure.judges import Judge
from rlkd_lite.structure.reward import StructureScore, structure_scores
from rlkd_lite.structure.steps import Step

_LISTED_IDS = 5
"""How many unpaired ids an error message names before saying "and N more"."""


@dataclass(frozen=True, slots=True)
class Trace:
    """One valid record of a trace file."""

    id: str | int | None
    line: int
    position: int
    """0-based index among the file's non-blank lines (bad ones included), for order pairing."""
    question: str
    reasoning: str
    steps: list[Step] | None
    """Steps given in the file; None when they come from decomposing `reasoning`."""


@dataclass(frozen=True)
class TraceFile:
    """The valid records of one trace file, and the problems of the lines that were skipped."""

    path: str
    traces: list[Trace]
    records: int
    """Non-blank lines, valid or not."""
    problems: list[InputError]


def read_traces(path: str | Path, skip_bad: bool = False, *, teacher: bool = False) -> TraceFile:
    """Read and validate a trace file; see the module docstring for the format.

    A bad line (not JSON, a missing or wrong-typed field, a duplicate id, with `teacher` an
    empty trace) raises InputError naming the file, line and field; with `skip_bad` it is
    recorded in `problems` and skipped. An empty file, and a file where only some records have
    an id, always raise.
    """
    name = str(path)
    traces: list[Trace] = []
    problems: list[InputError] = []
    first_line_of: dict[str, int] = {}
    position = 0

    def skip(problem: InputError) -> None:
        nonlocal position
        problems.append(problem)
        position += 1

    for line_no, row in read_jsonl(path, on_error=skip if skip_bad else None):
        try:
            trace = _trace(row, name, line_no, position, teacher)
            if trace.id is not None:
                key = str(trace.id)
                if key in first_line_of:
                    raise InputError(f"duplicate id {trace.id!r} "
                                     f"(first on line {first_line_of[key]})",
                                     path=name, line=line_no, field="id")
                first_line_of[key] = line_no
            traces.append(trace)
        except InputError as problem:
            if not skip_bad:
                raise
            problems.append(problem)
        position += 1
    with_id = [t for t in traces if t.id is not None]
    if with_id and len(with_id) != len(traces):
        odd = next(t for t in traces if t.id is None)
        raise InputError("missing: other records have an 'id', so every record needs one",
                         path=name, line=odd.line, field="id")
    return TraceFile(name, traces, position, problems)


def _trace(row: dict, path: str, line: int, position: int, teacher: bool) -> Trace:
    """Validate one record (a teacher's when `teacher`: its trace must not be empty)."""
    where = {"path": path, "line": line}

    def bad(field: str, problem: str) -> InputError:
        return InputError(problem, field=field, **where)

    record_id = row.get("id")
    if record_id is not None and (isinstance(record_id, bool)
                                  or not isinstance(record_id, (str, int))):
        raise bad("id", f"expected a string or an integer, got {json_type(record_id)}")
    question = row.get("question", "")
    if not isinstance(question, str):
        raise bad("question", f"expected a string, got {json_type(question)}")
    steps = None
    if "steps" in row:
        steps = steps_field(row["steps"], where, allow_empty=not teacher)
    elif "reasoning" not in row:
        raise bad("reasoning", "missing: a record needs 'reasoning' (text) or 'steps' (a list)")
    reasoning = row.get("reasoning", "")
    if teacher and steps is None:
        text_field(reasoning, "reasoning", where)
    elif not isinstance(reasoning, str):
        raise bad("reasoning", f"expected a string, got {json_type(reasoning)}")
    return Trace(record_id, line, position, question, reasoning, steps)


def pair_traces(teacher: TraceFile, student: TraceFile,
                skip_bad: bool = False) -> tuple[list[tuple[Trace, Trace]], list[InputError]]:
    """Pair teacher and student records, in teacher-file order.

    By id when both files have ids (an id in only one file is an error, or with `skip_bad` a
    skipped record); by line order when neither has (the files must have as many records; a
    pair with a skipped line on either side is dropped). Records that both give a question
    must give the same one. Returns the pairs and the problems of the skipped records.
    """
    t_ids = any(t.id is not None for t in teacher.traces)
    s_ids = any(t.id is not None for t in student.traces)
    if t_ids != s_ids and teacher.traces and student.traces:
        with_ids, without = (teacher, student) if t_ids else (student, teacher)
        raise InputError(f"{with_ids.path} has 'id' fields but {without.path} does not: give "
                         "both files ids, or neither (then records pair by line order)")
    if not (t_ids or s_ids):
        if teacher.records != student.records:
            raise InputError(f"{teacher.path} has {teacher.records} records but {student.path} "
                             f"has {student.records}; without ids, records pair by line order")
        by_position = {s.position: s for s in student.traces}
        return _same_questions([(t, by_position[t.position]) for t in teacher.traces
                                if t.position in by_position], teacher, student, skip_bad, [])
    by_id = {str(s.id): s for s in student.traces}
    pairs = [(t, by_id[str(t.id)]) for t in teacher.traces if str(t.id) in by_id]
    teacher_keys = {str(t.id) for t in teacher.traces}
    unpaired = [(teacher, student, [t for t in teacher.traces if str(t.id) not in by_id]),
                (student, teacher, [s for s in student.traces if str(s.id) not in teacher_keys])]
    problems = [InputError(f"id {t.id!r} is not in {other.path}",
                           path=own.path, line=t.line, field="id")
                for own, other, lonely in unpaired for t in lonely]
    if problems and not skip_bad:
        raise InputError("; ".join(_unpaired_summary(own, other, lonely)
                                   for own, other, lonely in unpaired if lonely))
    return _same_questions(pairs, teacher, student, skip_bad, problems)


def _same_questions(pairs: list[tuple[Trace, Trace]], teacher: TraceFile, student: TraceFile,
                    skip_bad: bool, problems: list[InputError]
                    ) -> tuple[list[tuple[Trace, Trace]], list[InputError]]:
    """The pairs whose records ask the same question where both say one; another question
    means the files come from different problem sets (an error, or with `skip_bad` a skip)."""
    kept = []
    for t, s in pairs:
        if t.question and s.question and not same_question(t.question, s.question):
            record = s.id if s.id is not None else s.position + 1
            error = InputError(f"record {record!r} asks another question than in "
                               f"{teacher.path} ({s.question[:60]!r} vs {t.question[:60]!r})",
                               path=student.path, line=s.line, field="question")
            if not skip_bad:
                raise error
            problems.append(error)
        else:
            kept.append((t, s))
    return kept, problems


def _unpaired_summary(own: TraceFile, other: TraceFile, lonely: list[Trace]) -> str:
    named = ", ".join(repr(t.id) for t in lonely[:_LISTED_IDS])
    more = f" and {len(lonely) - _LISTED_IDS} more" if len(lonely) > _LISTED_IDS else ""
    return f"{len(lonely)} id(s) of {own.path} are not in {other.path}: {named}{more}"


@dataclass(frozen=True, slots=True)
class ScoredPair:
    """A teacher/student pair with its steps and structure score."""

    id: str | int
    """The record's id; without ids, its 1-based record number."""
    teacher: list[Step]
    student: list[Step]
    score: StructureScore

    @property
    def full_match(self) -> bool:
        """Every teacher step scored 1 (never so when either side has no steps)."""
        return self.score.first_divergence is None


@dataclass(frozen=True)
class ScoreResult:
    """What `score_files` found: scored pairs in teacher-file order, and skipped lines."""

    pairs: list[ScoredPair]
    problems: list[InputError]

    def summary(self) -> dict[str, Any]:
        """pairs, mean, median, full_match (share of pairs where every teacher step scored 1),
        mean_first_divergence (mean 0-based position of the first teacher step not reproduced,
        over the pairs that diverged; None if none did) and skipped (bad lines and records)."""
        rewards = [p.score.reward for p in self.pairs]
        divergences = [p.score.first_divergence for p in self.pairs
                       if p.score.first_divergence is not None]
        return {
            "pairs": len(self.pairs),
            "mean": statistics.fmean(rewards) if rewards else 0.0,
            "median": float(statistics.median(rewards)) if rewards else 0.0,
            "full_match": (sum(p.full_match for p in self.pairs) / len(self.pairs)
                           if self.pairs else 0.0),
            "mean_first_divergence": statistics.fmean(divergences) if divergences else None,
            "skipped": len(self.problems),
        }

    def report(self) -> dict[str, Any]:
        """The JSON report: {"summary": ..., "items": [{id, reward, teacher_steps,
        student_steps, step_rewards}, ...]}."""
        return {
            "summary": self.summary(),
            "items": [{"id": p.id, "reward": p.score.reward, "teacher_steps": p.score.teacher_steps,
                       "student_steps": p.score.student_steps, "step_rewards": p.score.step_rewards}
                      for p in self.pairs],
        }

    def lowest(self, n: int) -> list[ScoredPair]:
        """The `n` lowest-scoring pairs, lowest first (teacher-file order among equals)."""
        return sorted(self.pairs, key=lambda p: p.score.reward)[:n]


@dataclass(frozen=True)
class PairedTraces:
    """Two trace files read, validated and paired: what `score_pairs` scores."""

    pairs: list[tuple[Trace, Trace]]
    """(teacher, student) records in teacher-file order."""
    problems: list[InputError]
    """Bad lines and unpaired records skipped (with `skip_bad`)."""


def pair_files(teacher_path: str | Path, student_path: str | Path,
               skip_bad: bool = False) -> PairedTraces:
    """Read, validate and pair two trace files, before any model is loaded to score them.

    Raises InputError for bad input (see `read_traces` and `pair_traces`) and when no pair is
    left; with `skip_bad`, bad lines and unpaired records are skipped and listed in `problems`.
    """
    with _batch_gc():
        teacher = read_traces(teacher_path, skip_bad, teacher=True)
        student = read_traces(student_path, skip_bad)
        pairs, unpaired = pair_traces(teacher, student, skip_bad)
    if not pairs:
        raise InputError(f"no valid pairs to score in {teacher.path} and {student.path}")
    return PairedTraces(pairs, teacher.problems + student.problems + unpaired)


def score_pairs(paired: PairedTraces, decomposer: Decomposer, judge: Judge,
                normalize: bool = False) -> ScoreResult:
    """Decompose the traces without given steps and score every pair (one batched judge call).

    A model-backed decomposer (one with a `batch_size`) is called a batch at a time under a
    progress bar: on a CPU, or with many traces, it runs for minutes.
    """
    pairs = paired.pairs
    with _batch_gc():
        t_steps, s_steps = _decompose([t for t, _ in pairs] + [s for _, s in pairs], decomposer)
        scores = structure_scores(t_steps, s_steps, judge, normalize)
        scored = [ScoredPair(t.id if t.id is not None else t.position + 1, ts, ss, score)
                  for (t, _), ts, ss, score in zip(pairs, t_steps, s_steps, scores)]
    return ScoreResult(scored, paired.problems)


def score_files(teacher_path: str | Path, student_path: str | Path, decomposer: Decomposer,
                judge: Judge, normalize: bool = False, skip_bad: bool = False) -> ScoreResult:
    """Read, pair, decompose and score two trace files: `pair_files`, then `score_pairs`."""
    return score_pairs(pair_files(teacher_path, student_path, skip_bad), decomposer, judge,
                       normalize)


@contextlib.contextmanager
def _batch_gc() -> Iterator[None]:
    """Keep Python's cyclic garbage collector out of a batch that builds many acyclic objects.

    Scoring builds hundreds of thousands of small objects (records, steps, judge pairs) and
    keeps many of them; the collector would scan them again and again while they are young,
    looking for cycles there are none of (30-40% of a large `score` run). So it is off during
    the batch, and afterwards the survivors go straight to the oldest generation (freeze, then
    unfreeze) instead of being scanned once more as young objects; full collections still
    look at them later. Memory is freed by reference counting throughout.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if gc.get_freeze_count() == 0:  # never thaw what someone else froze
            gc.freeze()
            gc.unfreeze()
        if was_enabled:
            gc.enable()


def _decompose(traces: Sequence[Trace],
               decomposer: Decomposer) -> tuple[list[list[Step]], list[list[Step]]]:
    """Steps for every trace (given ones as they are, the rest decomposed), split back into
    the first and second half. Rule-based decomposers get all traces in one call."""
    todo = [i for i, t in enumerate(traces) if t.steps is None]
    batch_size = getattr(decomposer, "batch_size", None)
    if batch_size:
        # By length, as the decomposer orders one call: a batch decodes until its longest row
        # stops, so rows of like length should share batches.
        todo.sort(key=lambda i: len(traces[i].question) + len(traces[i].reasoning))
    items = [DecomposeInput(traces[i].question, traces[i].reasoning) for i in todo]
    if batch_size and items:
        from rlkd_lite.console import item_progress

        decomposed: list[list[Step]] = []
        with item_progress("decompose") as progress:
            task = progress.add_task("", total=len(items))
            for start in range(0, len(items), batch_size):
                decomposed += decomposer(items[start:start + batch_size])
                progress.update(task, completed=len(decomposed))
    else:
        decomposed = decomposer(items) if items else []
    if len(decomposed) != len(todo):
        raise RlkdError(f"the decomposer returned {len(decomposed)} step lists "
                        f"for {len(todo)} traces")
    steps = [t.steps for t in traces]
    for i, found in zip(todo, decomposed):
        steps[i] = found
    half = len(traces) // 2
    return steps[:half], steps[half:]


# Encodes one report item per line; made once, as `json.dumps` with options makes one per call.
_ITEM_ENCODER = json.JSONEncoder(ensure_ascii=False)


def write_report(path: str | Path, result: ScoreResult) -> None:
    """Write the JSON report atomically: the summary indented, then one item per line.

    One item per line keeps large reports readable and greppable, and lets the C JSON encoder
    write them (json's `indent` falls back to the pure-Python encoder, ten times slower).
    """
    report = result.report()
    items = ",\n    ".join(map(_ITEM_ENCODER.encode, report["items"]))
    summary = textwrap.indent(json.dumps(report["summary"], ensure_ascii=False, indent=2),
                              "  ").lstrip()
    write_text_atomic(path, f'{{\n  "summary": {summary},\n  "items": [\n    {items}\n  ]\n}}\n')
