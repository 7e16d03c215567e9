"""Final-answer extraction and comparison by value."""
from __future__ import annotations

import pytest

from rlkd_lite.data.answers import answers_match, extract_final_answer, parse_number


@pytest.mark.parametrize(("text", "expected"), [
    # GSM8K's own marker wins over everything else.
    ("She has 48/2 = <<48/2=24>>24 left.\n#### 24", "24"),
    ("#### $1,234.", "1234"),
    ("The answer is 5.\n#### 7", "7"),
    ("#### 3\nlater #### 4", "4"),
    # \boxed, with nested braces and LaTeX fractions/text.
    (r"So the total is \boxed{42}.", "42"),
    (r"\boxed{\frac{3}{4}}", "3/4"),
    (r"\boxed{x = {5}} and then 9", "5"),
    (r"\boxed{18 \text{ dollars}}", "18"),
    (r"first \boxed{1} then \boxed{2}", "2"),
    (r"The answer is 3. \boxed{6}", "6"),
    # Answer phrases.
    ("The answer is 72.", "72"),
    ("So the final answer is $1,000.", "1000"),
    ("Final Answer: **-12.5**", "-12.5"),
    ("The answer is 8, not the 10 we had before", "8"),
    ("answer: 3/4 of the cake, 12 slices", "3/4"),
    # Otherwise the last number.
    ("5 apples and 3 pears make 8", "8"),
    ("We get 5-3 = 2", "2"),
    ("it is -7 degrees", "-7"),
    ("it costs $2,500.50.", "2500.50"),
    ("values 1,2,3", "3"),
    ("a typeset minus \u22124", "-4"),
    ("about 0.25 of it", "0.25"),
    # Only what follows the reasoning counts when there is a think block.
    ("<think>Maybe 10? #### 10</think>\nIt is 12.", "12"),
    ("<think>lots of 3 and 4</think>The answer is 9", "9"),
    ("<think>#### 10</think>", None),
    ("no number here", None),
    ("", None),
    (r"\boxed{yes}", "yes"),
    ("#### forty", "forty"),
])
def test_extract_final_answer(text, expected):
    assert extract_final_answer(text) == expected


@pytest.mark.parametrize(("text", "value"), [
    ("42", 42.0), (" $1,234.50 ", 1234.5), ("-3/4", -0.75), ("72.", 72.0), (".5", 0.5),
    ("-$5", -5.0), ("1/0", None), ("12 apples", None), ("", None), ("1,2", None),
    ("forty", None),
])
def test_parse_number(text, value):
    assert parse_number(text) == value


@pytest.mark.parametrize(("predicted", "gold", "match"), [
    ("72", "72", True),
    ("72.0", "72", True),
    ("0.75", "3/4", True),
    ("1234", "1,234", True),
    ("$18", "18", True),
    ("1000000.5", "1000000", True),   # within 1e-6 relative
    ("1000002", "1000000", False),    # beyond it
    ("0", "0", True),
    ("-5", "5", False),
    ("71", "72", False),
    ("Yes.", "yes", True),            # non-numeric: normalised strings
    ("no", "yes", False),
    ("forty", "40", False),
    (None, "72", False),
])
def test_answers_match(predicted, gold, match):
    assert answers_match(predicted, gold) is match


def test_extraction_then_match_on_a_completion():
    completion = "<think>12*3 = 36 dollars, plus 4</think>\nShe pays $40.00 in total."
    assert answers_match(extract_final_answer(completion), "40")


HEADED = ("#### Step 1: Clips sold in May\nNatalia sold 48/2 = 24 clips in May.\n"
          "#### Step 2: Total\nShe sold 48+24 = 72 clips in all.\nThe answer is 72.")


@pytest.mark.parametrize(("text", "expected"), [
    (HEADED, "72"),
    ("She sold 48+24 = 72 clips.\n#### Final Answer\nThe answer is 72.", "72"),
    ("#### Step 1\nShe has 5 apples, then 3 more: 8", "8"),
    (r"#### Solution" "\n" r"So she has \boxed{9}.", "9"),
    ("#### Step 1\n#### 72", "72"),
])
def test_markdown_headings_are_not_the_answer_marker(text, expected):
    assert extract_final_answer(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("#### 25%", "25"),
    (r"\boxed{1{,}200}", "1200"),
    (r"The answer is $1{,}234{,}567$.", "1234567"),
    ("I got 5 - 3", "3"),
    ("(2 + 4) - 7", "7"),
    (r"\boxed{10 - 4}", "4"),
    ("it is -7 degrees, then - 2", "-2"),
    ("The answer is -5", "-5"),
])
def test_percent_latex_thousands_and_binary_minus(text, expected):
    assert extract_final_answer(text) == expected


@pytest.mark.parametrize(("text", "value"), [
    ("25%", 25.0), ("12.5 %", 12.5), ("25%.", 25.0), ("1{,}200", 1200.0), ("%", None),
])
def test_parse_number_drops_a_percent_sign_and_reads_latex_thousands(text, value):
    assert parse_number(text) == value


def test_a_marked_percent_matches_its_gold_answer():
    assert answers_match(extract_final_answer("#### 25%"), "25%")
    assert answers_match(extract_final_answer(r"\boxed{1{,}200}"), "1200")


@pytest.mark.parametrize("text, expected", [
    ("There are 3 options.\n#### B", "B"),       # a word or letter answer that ends the text
    ("4*10=40\n#### forty", "forty"),
    ("Balance: 100\n-20", "-20"),                # a minus at a line start is a sign
    ("#### Final Answer\nThe answer is 72.", "72"),  # a heading mid-text is not the marker
    ("The answer is 18.\n\n#### Final Answer", "18"),  # nor a heading at the very end
    ("The answer is \\boxed{18}.\n\n#### Step 3: Add the totals", "18"),
    ("Four tens make forty.\n#### forty\n\nHope this helps!", "forty"),  # no number at all
])
def test_a_closing_marker_line_wins_and_a_new_line_keeps_a_sign(text, expected):
    assert extract_final_answer(text) == expected


NUMBERED = ("#### 1. Compute the total\nShe pays 3 + 4 = 7 dollars.\n"
            "#### 2. Add the tip\nWith the tip, 7 + 2 = 9.")


@pytest.mark.parametrize(("text", "expected"), [
    (NUMBERED, "9"),
    ("#### 1) Add them\n5 + 2 = 7", "7"),
    ("#### 1. Compute the total\n#### 72", "72"),
    ("She has 8 apples.\n#### 2. Check the count", "8"),   # a numbered heading at the end
    ("#### 1. Count the apples\nFour and four make eight.", None),  # its number is no answer
    # The heading's own text still counts.
    ("### Solution\n#### 1. Eggs laid: 16\n#### 4. Revenue: 9 × $2 = $18", "18"),
    ("#### 3. Final answer: **18**", "18"),
    ("#### 3. The answer is 18", "18"),
    ("#### 2. Final answer: $18", "18"),
    ("#### 2. Eggs\n9\n#### 2. Final Answer: \\boxed{18}", "18"),
    ("#### 1: Compute the total\n3 + 4 = 7", "7"),       # other separators
    ("#### 1.Compute the total\n3 + 4 = 7", "7"),
    ("#### 1)Add\n3 + 4 = 7", "7"),
    ("##### 1. Compute the total\n3 + 4 = 7", "7"),    # not four hashes: a heading
    ("3 + 4 = 7\n#### 18.", "18"),                     # a number ending a sentence is the marker
    ("3 + 4 = 7\n#### 3.5", "3.5"),
])
def test_numbered_headings_are_not_the_answer_marker(text, expected):
    assert extract_final_answer(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Step 1. 70 + 2\n#### 72", "72"),
    ("10 - 15 = -5\n#### -5 \nHope this helps, 3 cheers!", "-5"),
    ("#### 1,200\nThat was step 2.", "1200"),
    ("#### $12.50\n", "12.50"),
    ("#### 3.\nDone in 2 steps.", "3"),
    ("#### 25 %\n", "25"),
])
def test_a_number_that_ends_its_line_is_the_answer_marker(text, expected):
    assert extract_final_answer(text) == expected


def test_boxes_that_never_close_or_nest_deeply_are_read_in_one_pass():
    # Degenerate model output; scanning ahead from every box was quadratic.
    assert extract_final_answer("\\boxed{" * 20_000) is None
    assert extract_final_answer("\\boxed{" * 20_000 + "7" + "}" * 20_000) == "7"
    assert extract_final_answer("\\boxed{3} then \\boxed{" * 5_000) == "3"


@pytest.mark.parametrize("text, answer", [
    # MATH-style thousands separators and an escaped dollar sign inside LaTeX.
    (r"The total is \boxed{1,\!500}.", "1500"),
    (r"The total is \boxed{1\,500}.", "1500"),
    (r"She loses \boxed{-\$250}.", "-250"),
    (r"**Final Answer:** -\$250", "-250"),
    # A label followed by a sentence: the first number after it, not the last of the text.
    ("**Final Answer:** It takes Carla 160 minutes to download the 200 GB file.", "160"),
    ("**Final Answer:** Janet makes **$18** every day from her 16 eggs.", "18"),
    # "The answer is" followed by the computation: its result.
    ("The answer is 18 + 4 = 22.", "22"),
    ("Therefore, the answer is 2 × 36 = 72.", "72"),
    # "the answer is" without a number after it is no answer phrase.
    ("We check that the answer is reasonable.\nSo 9 in all.", "9"),
])
def test_answers_written_by_instruct_models(text, answer):
    assert extract_final_answer(text) == answer
