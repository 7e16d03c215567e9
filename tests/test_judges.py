"""The model-free judges: exact and lexical, and the judge registry."""
from __future__ import annotations

import pytest

from rlkd_lite.errors import InputError
from rlkd_lite.structure.judges import ExactJudge, JudgePair, LexicalJudge, make_judge


def problem(teacher: str, student: str) -> JudgePair:
    return JudgePair("problem", teacher, student)


def answer(teacher: str, student: str) -> JudgePair:
    return JudgePair("answer", teacher, student)


def test_exact_ignores_case_whitespace_and_surrounding_punctuation():
    judge = ExactJudge()
    assert judge([problem("Find the  total.", "  find the\ntotal "),
                  answer("$24", "24"),
                  problem("48/2", "48*2"),
                  answer("24", "24.0"),
                  problem("", "")]) == [True, True, False, False, True]


def test_exact_judge_answers_one_verdict_per_pair_in_order():
    assert ExactJudge()([]) == []
    pairs = [problem("a", "a"), problem("a", "b")] * 3
    assert ExactJudge()(pairs) == [True, False] * 3


@pytest.mark.parametrize("teacher, student", [
    ("24", "24.0"), ("$24", "24 dollars"), ("1,200", "1200"), ("$1,200.00", "1200"),
    ("0.5", ".5"), ("She earns $10", "10"),
])
def test_lexical_answers_compare_numbers_by_value(teacher, student):
    assert LexicalJudge()([answer(teacher, student)]) == [True]


@pytest.mark.parametrize("teacher, student", [
    ("24", "25"), ("$24", "2.4 dollars"), ("1,200", "120"), ("12 and 3", "12"),
])
def test_lexical_answers_with_different_numbers_differ(teacher, student):
    assert LexicalJudge()([answer(teacher, student)]) == [False]


def test_lexical_handles_numbers_too_long_for_int():
    long_number = "1" * 5000  # int() refuses more than 4300 digits
    assert LexicalJudge()([answer(long_number, "0" + long_number), answer(long_number, "1" * 4999),
                           answer("1" * 400 + ".5", "2")]) == [True, False, False]


def test_lexical_answers_without_numbers_fall_back_to_overlap():
    judge = LexicalJudge()
    assert judge([answer("red apples", "the red apples"), answer("red apples", "green pears"),
                  answer("yes", "24")]) == [True, False, False]


def test_lexical_problems_pass_paraphrases_and_fail_other_quantities():
    judge = LexicalJudge()
    assert judge.similarity("Find the clips sold in May",
                            "Natalia sold half as many clips in May") \
        == pytest.approx(2 * 3 / (3 + 5))  # {sold, clips, may} shared; stop words dropped
    verdicts = judge([
        problem("Find the clips sold in May", "Natalia sold half as many clips in May"),
        problem("In total it makes muffins.", "Altogether it makes muffins."),
        problem("How many rows do 48 plants make?",
                "How many rows do 48 plants make with 8 per row?"),
        problem("In the first part the train covers miles.",
                "The average speed is miles per hour."),
        problem("48/2", "48*2"),  # operators are tokens: a different sub-problem
        problem("1,200 / 3", "1200/3"),
        problem("0.2 x $50", "50*0.2"),
        problem("48-24", "48-24-4"),
    ])
    assert verdicts == [True, True, True, False, False, True, True, False]


def test_lexical_threshold_is_the_decision_boundary():
    pair = problem("apples pears plums", "apples pears kiwis")  # Dice = 2*2/6 = 0.667
    assert LexicalJudge(threshold=0.66)([pair]) == [True]
    assert LexicalJudge(threshold=0.67)([pair]) == [False]
    assert LexicalJudge.DEFAULT_THRESHOLD == 0.5
    with pytest.raises(InputError):
        LexicalJudge(threshold=1.5)


def test_lexical_empty_texts_match_only_each_other():
    judge = LexicalJudge()
    assert judge([problem("", ""), problem("", "something"), problem("the of", "")]) == \
        [True, False, True]  # "the of" has no content tokens, like ""


def test_make_judge_builds_by_name_and_rejects_unknown_names():
    assert isinstance(make_judge("exact"), ExactJudge)
    lexical = make_judge("lexical", threshold=0.8)
    assert isinstance(lexical, LexicalJudge) and lexical.threshold == 0.8
    with pytest.raises(InputError, match="unknown judge 'fuzzy'.*exact, lexical, llm"):
        make_judge("fuzzy")
