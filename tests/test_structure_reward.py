"""The structure reward against its reference semantics (`rlkd_lite.structure.reward`):
hand-computed cases and a property test."""
from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlkd_lite.structure.judges import ExactJudge, JudgePair
from rlkd_lite.structure.reward import StructureScore, structure_score, structure_scores
from rlkd_lite.structure.steps import Step


def reference_reward(T, S, same_problem, same_answer):
    """The reference semantics (`rlkd_lite.structure.reward`), transcribed line by line (one
    judge question at a time), with the one departure of reward.py: without meta-reasoning on
    either side, the sub-problems say whether the same one was chosen."""
    if not T or not S:
        return 0
    r = []
    for i in range(min(len(T), len(S))):
        if r and r[-1] == 0:
            r.append(0)
            continue
        if T[i].meta.strip() or S[i].meta.strip():
            r.append(1 if same_problem(T[i].meta, S[i].meta) else 0)
        else:
            r.append(1 if same_problem(T[i].query, S[i].query) else 0)
    for i, ri in enumerate(r):
        if ri and not same_problem(T[i].query, S[i].query):
            r[i] *= 0.5
        if ri and not same_answer(T[i].answer, S[i].answer):
            r[i] *= 0.5
    return sum(r)


class CountingJudge:
    """Exact comparison that records how it was called."""

    def __init__(self):
        self.calls: list[list[JudgePair]] = []

    def __call__(self, pairs):
        self.calls.append(list(pairs))
        return ExactJudge()(pairs)


T3 = [Step("m1", "q1", "a1"), Step("m2", "q2", "a2"), Step("m3", "q3", "a3")]


@pytest.mark.parametrize("student, step_rewards, first_divergence", [
    (T3, [1, 1, 1], None),
    ([Step("m1", "other", "a1"), *T3[1:]], [0.5, 1, 1], 0),           # sub-problem miss
    ([Step("m1", "q1", "other"), *T3[1:]], [0.5, 1, 1], 0),           # answer miss
    ([Step("m1", "x", "y"), *T3[1:]], [0.25, 1, 1], 0),               # both
    ([T3[0], Step("other", "q2", "a2"), T3[2]], [1, 0, 0], 1),        # meta miss gates the rest
    ([Step("m1", "x", "a1"), Step("m2", "q2", "y"), Step("no", "q3", "a3")], [0.5, 0.5, 0], 0),
    (T3[:2], [1, 1], 2),                                               # student stops early
    ([*T3, Step("extra", "q", "a")], [1, 1, 1], None),                # extra steps are free
])
def test_hand_computed_rewards(student, step_rewards, first_divergence):
    score = structure_score(T3, student, ExactJudge())
    assert score.step_rewards == step_rewards
    assert score.reward == sum(step_rewards)
    assert score.first_divergence == first_divergence
    assert (score.teacher_steps, score.student_steps) == (3, len(student))


def test_empty_sides_score_zero():
    judge = CountingJudge()
    assert structure_score([], T3, judge) == StructureScore(0, [], 0, 3, 0)
    assert structure_score(T3, [], judge) == StructureScore(0, [], 3, 0, 0)
    assert structure_score([], [], judge, normalize=True) == StructureScore(0, [], 0, 0, 0)
    assert judge.calls == []  # nothing to ask


def test_normalize_divides_by_teacher_steps():
    student = [T3[0], Step("m2", "x", "a2")]
    assert structure_score(T3, student, ExactJudge()).reward == 1.5
    assert structure_score(T3, student, ExactJudge(), normalize=True).reward == pytest.approx(0.5)


def test_one_judge_call_for_the_whole_batch_with_every_distinct_aligned_pair():
    judge = CountingJudge()
    students = [T3, [Step("no", "q1", "a1"), T3[1]], []]
    scores = structure_scores([T3, T3, T3], students, judge)
    assert [s.reward for s in scores] == [3, 0, 0]
    assert len(judge.calls) == 1
    # 3 + 2 aligned positions, 3 pairs each, gated positions included: 15 pairs, of which the
    # second student repeats 5 of the first's.
    assert len(judge.calls[0]) == 10 == len(set(judge.calls[0]))
    assert judge.calls[0][:3] == [JudgePair("problem", "m1", "m1"),
                                  JudgePair("problem", "q1", "q1"),
                                  JudgePair("answer", "a1", "a1")]
    assert JudgePair("problem", "m1", "no") in judge.calls[0]


def test_a_judge_for_which_identical_texts_match_is_not_asked_about_them():
    class TrustingJudge(CountingJudge):
        identical_texts_match = True

    students = [T3, [Step("no", "q1", "a1"), T3[1]], [T3[0], Step("m2", "other", "a2")]]
    trusting, asking = TrustingJudge(), CountingJudge()
    assert structure_scores([T3] * 3, students, trusting) == \
        structure_scores([T3] * 3, students, asking)
    assert trusting.calls == [[JudgePair("problem", "m1", "no"),
                               JudgePair("problem", "q2", "other")]]
    assert all(p.teacher == p.student for p in asking.calls[0][:3])  # asked about copies


@pytest.mark.parametrize("broken_judge", [
    lambda pairs: 1 / 0,
    lambda pairs: [True],  # wrong number of verdicts
])
def test_a_failing_judge_scores_the_batch_zero_and_logs(broken_judge, caplog):
    with caplog.at_level(logging.WARNING, logger="rlkd_lite.structure.reward"):
        scores = structure_scores([T3, T3], [T3, T3[:1]], broken_judge)
    assert [(s.reward, s.step_rewards, s.first_divergence) for s in scores] == \
        [(0, [0, 0, 0], 0), (0, [0], 0)]
    assert "every item of the batch scores 0" in caplog.text


def test_steps_without_meta_reasoning_are_chosen_alike_only_with_the_same_sub_problem():
    teacher = [Step("", "3*4", "12"), Step("", "12-5", "7")]
    unrelated = [Step("", "100/4", "25"), Step("", "25*2", "50")]
    assert structure_score(teacher, unrelated, ExactJudge()).step_rewards == [0, 0]
    assert structure_score(teacher, teacher, ExactJudge()).step_rewards == [1, 1]
    # One side with meta-reasoning: the metas are compared as ever (here: a miss).
    assert structure_score(teacher, [Step("first the boxes", "3*4", "12")],
                           ExactJudge()).step_rewards == [0]


def test_mismatched_batch_lengths_are_a_programming_error():
    with pytest.raises(ValueError):
        structure_scores([T3], [], ExactJudge())


# Small alphabets so that equal texts (matches) are common; "" and " " are no meta-reasoning.
text_field = st.sampled_from(["", " ", "a", "b", "c"])
steps_field = st.lists(st.builds(Step, text_field, text_field, text_field), max_size=6)


@settings(max_examples=300)
@given(st.lists(st.tuples(steps_field, steps_field), max_size=5),
       st.dictionaries(st.tuples(st.sampled_from(["problem", "answer"]), text_field, text_field),
                       st.booleans()),
       st.booleans())
def test_batched_reward_equals_the_reference(items, verdict_table, normalize):
    """Any judge (here: an arbitrary table of verdicts) gives the reference's rewards."""

    def verdict(kind, t, s):
        return verdict_table.get((kind, t, s), t == s)

    def judge(pairs):
        return [verdict(p.kind, p.teacher, p.student) for p in pairs]

    teacher, student = [t for t, _ in items], [s for _, s in items]
    scores = structure_scores(teacher, student, judge, normalize=normalize)
    for (T, S), score in zip(items, scores):
        expected = reference_reward(T, S, lambda t, s: verdict("problem", t, s),
                                    lambda t, s: verdict("answer", t, s))
        if normalize and T:
            expected /= len(T)
        assert score.reward == pytest.approx(expected)
        assert len(score.step_rewards) == (min(len(T), len(S)) if T and S else 0)
        assert set(score.step_rewards) <= {0, 0.25, 0.5, 1}
        full = bool(T) and len(S) >= len(T) and all(r == 1 for r in score.step_rewards)
        assert (score.first_divergence is None) == full
