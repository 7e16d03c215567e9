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


@pytest.mark.parametrize("teacher, student", [
    ("-5", "5"), (".5", "5"), ("-8", "8"), ("-.5", ".5"), ("-$5", "$5"), ("x = -5", "x = 5"),
])
def test_exact_keeps_a_sign_or_decimal_point_that_starts_a_number(teacher, student):
    assert ExactJudge()([answer(teacher, student), problem(teacher, student)]) == [False, False]


def test_exact_still_strips_punctuation_that_is_not_part_of_a_number():
    assert ExactJudge()([answer("-5.", "-5"), answer("($24)", "24"), answer("- yes", "yes"),
                         answer("...5", ".5"), answer("-.5", "-.5!")]) == [True] * 5


@pytest.mark.parametrize("teacher, student, same", [
    ("-5", "5", False), ("-8", "8", False), ("-.5", ".5", False), ("-$5", "5", False),
    ("It is -5 degrees", "It is 5 degrees", False),
    ("-5", "-5.0", True), ("-0", "0", True), ("-$5", "-5", True),
    ("12 -5", "12 - 5", True),  # after a number, a minus is subtraction
    ("12 -$5", "12 - 5", True), ("1 -$.5", "1 - 0.5", True),  # of an amount (was a crash)
])
def test_lexical_answers_keep_the_sign_of_a_number(teacher, student, same):
    assert LexicalJudge()([answer(teacher, student)]) == [same]


@pytest.mark.parametrize("teacher, student, same", [
    ("3/4", "4/3", False), ("3/4", "0.75", True), ("48/2", "24", True), ("6/8", "3/4", True),
    ("3/4 cup", "4/3 cup", False), ("3/4 of the cake", "0.75 of the cake", True),
    ("2+3*4", "2*3+4", False), ("2+3*4", "14", True), ("(2+3)*4", "20", True),
    ("100-20", "20-100", False), ("2^3", "3^2", False), ("25%", "25", True),
    ("1/0", "0/1", False), ("1/0", "1/0", True),
])
def test_lexical_answers_compare_fractions_and_expressions_by_value(teacher, student, same):
    assert LexicalJudge()([answer(teacher, student)]) == [same]


@pytest.mark.parametrize("teacher, student, same", [
    # Same numbers and operators but another value: another sub-problem.
    ("48/2", "2/48", False), ("2+3*4", "2*3+4", False), ("100-20", "20-100", False),
    ("(60+40)/2", "60+40/2", False), ("2^3", "3^2", False), ("-5*2", "5*2", False),
    ("12 - 5", "-12 + 5", False),
    # Same numbers, operators and value: the same sub-problem written another way.
    ("48+24", "24 + 48", True), ("0.2 x $50", "50*0.2", True), ("(60+40)/2", "(40+60)/2", True),
    ("1,200 / 3", "1200/3", True), ("20%*50", "50*20%", True),
    # Another computation of the same value is still another sub-problem.
    ("48/2", "6*4", False), ("2+2", "2*2", False),
    # Neither side evaluable ("="): the numbers and operators decide, as before.
    ("48/2=24", "24=48/2", True),
    ("007+1", "1+7", True),  # leading zeros, which Python's parser refuses, are read
])
def test_lexical_expressions_are_compared_by_value_and_tokens(teacher, student, same):
    assert LexicalJudge()([problem(teacher, student)]) == [same]


def test_lexical_wording_is_still_token_overlap_with_signs_kept():
    judge = LexicalJudge()
    assert judge([problem("Find the temperature change of -5 degrees",
                          "the temperature change of -5 degrees"),
                  problem("Divide 48 by 2 to get the clips", "Divide 2 by 48 to get the clips"),
                  problem("a -5", "a 5")]) == [True, True, False]


def test_a_calculation_cut_from_its_parentheses_still_matches_by_its_tokens():
    # The rules decomposer reads "(3*4 = 12)" as the sub-problem "(3*4", which has no value.
    judge = LexicalJudge()
    assert judge([problem("3*4", "(3*4"), problem("48/2", "48/2,"), problem("5 * 3", "5 * 3 ."),
                  problem("3*4", "(4*3")]) == [True, True, True, True]
    assert judge([answer("\u22125", "-5"), answer("\u22125", "5")]) == [True, False]
    # The cut parenthesis is dropped before evaluating, so the value still tells 48/2 from 2/48.
    assert judge([problem("(48/2", "2/48"), problem("(48/2", "(2/48"),
                  problem("48/2)", "48/2")]) == [False, False, True]
    # A typeset minus takes part in the value check like "-".
    assert judge([problem("3\u22125", "5\u22123"), answer("10\u22123", "7")]) == [False, True]


def test_lexical_expressions_without_a_value_fall_back_to_tokens_and_never_raise():
    judge = LexicalJudge()
    huge = "9^9^9^9^9"
    assert judge([problem(huge, huge.replace("^", " ^ ")),  # overflows
                  problem(huge, "9^9^9^9^8"),
                  problem("(" * 99 + "1" + ")" * 99, "1"),
                  problem("-" * 198 + "1", "-" * 198 + "1 "),  # deep, but evaluated
                  problem("(" * 300 + "1" + ")" * 300, "1"),  # too long to evaluate: tokens
                  problem("1" * 5000 + "+1", "1+" + "1" * 5000),  # no value on either side
                  problem("(-8)^(1/3)", "(1/3)^(-8)"),  # no real value on one side: tokens
                  problem("1/0", "0/1"),  # no value on one side: the tokens decide
                  answer("1e5", "100000")]) == \
        [True, False, True, True, True, True, True, True, False]
