"""The structure reward (RLKD's GSRM reward), batched over many (teacher, student) pairs.

Reference semantics, for teacher steps T and student steps S:
```
if not T or not S: return 0
r = []
for i in range(min(len(T), len(S))):
    if r and r[-1] == 0: r.append(0); continue  # prefix gating: after a miss, nothing counts
    r.append(1 if same_problem(T[i].meta, S[i].meta) else 0)
for i, ri in enumerate(r):
    if ri and not same_problem(T[i].query, S[i].query): r[i] *= 0.5
    if ri and not same_answer(T[i].answer, S[i].answer): r[i] *= 0.5
return sum(r)
```
Here every aligned position's three pairs (meta, sub-problem, answer) of every item go to the
judge in ONE call, each distinct pair once (the rollouts of a group share their teacher steps and
often repeat each other), and the gating is applied to the verdicts afterwards; the result
equals the sequential reference, while an LLM judge gets one big batch instead of many small ones.
A judge for which identical texts always match (`identical_texts_match`, as the lexical and exact
judges) is not asked about pairs of identical texts.

One departure: where neither step has meta-reasoning (the `rules` decomposer's bare calculation
lines have none), `same_problem(meta)` is asked of the two sub-problems instead. Two empty texts
would otherwise always "match", and unrelated calculations would earn a quarter per step.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from rlkd_lite.structure.judges import Judge, JudgePair, PairKind
from rlkd_lite.structure.steps import Step

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StructureScore:
    """The structure reward of one student path against its teacher path."""

    reward: float
    """Sum of `step_rewards` (divided by `teacher_steps` when normalised); 0 when either side
    has no steps or the judge failed."""
    step_rewards: list[float]
    """Per aligned position (min(teacher_steps, student_steps) of them): 1, 0.5, 0.25 or 0."""
    teacher_steps: int
    student_steps: int
    first_divergence: int | None
    """0-based index of the first teacher step the student did not reproduce fully (reward < 1,
    or no student step at that position); None when every teacher step scored 1, so student
    steps beyond the teacher's are not held against it. 0 when either side has no steps."""


def structure_scores(teacher: Sequence[Sequence[Step]], student: Sequence[Sequence[Step]],
                     judge: Judge, normalize: bool = False) -> list[StructureScore]:
    """Score each student path against its teacher path with one call to `judge`.

    `normalize` divides each reward by the teacher's step count (range [0, 1]); the default
    is the authors' unnormalised sum (range [0, min(len(T), len(S))]). If the judge raises or
    returns the wrong number of verdicts, every item gets reward 0 and a warning is logged.
    """
    if len(teacher) != len(student):
        raise ValueError(f"{len(teacher)} teacher paths but {len(student)} student paths")
    # (kind, teacher text, student text) of every pair: plain tuples, which are cheaper to build
    # than JudgePairs; only the distinct ones become JudgePairs (`_judge_all`).
    pairs: list[tuple[PairKind, str, str]] = []
    for t_steps, s_steps in zip(teacher, student):
        for t, s in zip(t_steps, s_steps):
            if t.meta.strip() or s.meta.strip():
                pairs.append(("problem", t.meta, s.meta))
            else:  # no meta-reasoning on either side
                pairs.append(("problem", t.query, s.query))
            pairs += (("problem", t.query, s.query), ("answer", t.answer, s.answer))
    verdicts = _judge_all(judge, pairs)
    scores = []
    offset = 0
    for t_steps, s_steps in zip(teacher, student):
        aligned = min(len(t_steps), len(s_steps))
        if verdicts is None:
            step_rewards = [0.0] * aligned
        else:
            step_rewards = _step_rewards(verdicts[offset:offset + 3 * aligned])
        offset += 3 * aligned
        scores.append(_score(step_rewards, len(t_steps), len(s_steps), normalize))
    return scores


def structure_score(teacher: Sequence[Step], student: Sequence[Step], judge: Judge,
                    normalize: bool = False) -> StructureScore:
    """The structure reward of one student path (see `structure_scores`)."""
    return structure_scores([teacher], [student], judge, normalize)[0]


def _judge_all(judge: Judge, pairs: list[tuple[PairKind, str, str]]) -> list[bool] | None:
    """The judge's verdicts for `pairs` (kind, teacher text, student text), asking it about each
    distinct pair once, or None when it failed (logged, never raised). A judge for which
    identical texts always match (`identical_texts_match`) is not asked about those."""
    if not pairs:
        return []
    skip_identical = getattr(judge, "identical_texts_match", False)
    # Each pair asked about is hashed once: to its index among the distinct pairs, in
    # first-seen order; None marks an identical pair not asked about.
    index_of: dict[tuple[PairKind, str, str], int] = {}
    indices = [None if skip_identical and pair[1] == pair[2]
               else index_of.setdefault(pair, len(index_of)) for pair in pairs]
    distinct = [JudgePair(*pair) for pair in index_of]
    try:
        verdicts = list(judge(distinct)) if distinct else []
    except Exception:  # a reward must never crash training; the batch scores 0 instead
        log.warning("structure judge failed on a batch of %d pairs; every item of the batch "
                    "scores 0", len(distinct), exc_info=True)
        return None
    if len(verdicts) != len(distinct):
        log.warning("structure judge returned %d verdicts for %d pairs; every item of the batch "
                    "scores 0", len(verdicts), len(distinct))
        return None
    return [True if index is None else verdicts[index] for index in indices]


def _step_rewards(verdicts: list[bool]) -> list[float]:
    """Per-step rewards from (meta, sub-problem, answer) verdict triples, with prefix gating."""
    rewards = []
    for i in range(0, len(verdicts), 3):
        same_meta, same_query, same_answer = verdicts[i:i + 3]
        if not same_meta:
            # Gating: the first meta-reasoning miss zeroes this step and every later one.
            rewards += [0.0] * (len(verdicts) // 3 - len(rewards))
            break
        rewards.append((1.0 if same_query else 0.5) * (1.0 if same_answer else 0.5))
    return rewards


def _score(step_rewards: list[float], teacher_steps: int, student_steps: int,
           normalize: bool) -> StructureScore:
    total = float(sum(step_rewards))
    if normalize and teacher_steps:
        total /= teacher_steps
    if not step_rewards:
        first_divergence = 0
    else:
        first_divergence = next((i for i, r in enumerate(step_rewards) if r < 1), None)
        if first_divergence is None and student_steps < teacher_steps:
            first_divergence = student_steps
    return StructureScore(total, step_rewards, teacher_steps, student_steps, first_divergence)
