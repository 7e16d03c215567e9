"""The model-free decomposers: rules (GSM8K-style), tagged, auto, and the registry."""
from __future__ import annotations

import pytest

from rlkd_lite.errors import InputError
from rlkd_lite.structure.decomposers import (
    AutoDecomposer,
    DecomposeInput,
    RulesDecomposer,
    TaggedDecomposer,
    make_decomposer,
)
from rlkd_lite.structure.steps import Step, render_steps

rules = RulesDecomposer().decompose


def test_calculator_annotations_give_query_and_answer_and_meta_hides_the_result():
    text = ("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
            "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n"
            "#### 72")
    assert rules(text) == [Step("Natalia sold clips in May.", "48/2", "24"),
                           Step("Natalia sold clips altogether in April and May.", "48+24", "72")]


def test_dollar_signs_spelled_operators_and_bare_annotations():
    text = ("Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\n"
            "Working 50 minutes, she earned 0.2 x 50 = $<<0.2*50=10>>10.\n"
            "Betty has <<100/2=50>>50 dollars.\n"
            "#### 10")
    assert rules(text) == [Step("Weng earns per minute.", "12/60", "0.2"),
                           Step("Working 50 minutes, she earned.", "0.2*50", "10"),
                           Step("Betty has dollars.", "100/2", "50")]


def test_free_form_computations_and_stated_results():
    text = ("Each apple costs 3 dollars, so she spends 5 x 3 = 15 dollars. "
            "Then she gets 1,200 / 100 = 12 coupons.\n"
            "The total number of items is 27.\n"
            "The average is (60 + 40) / 2 = 50.")
    assert rules(text) == [
        Step("Each apple costs 3 dollars, so she spends dollars.", "5*3", "15"),
        Step("Then she gets coupons.", "1200/100", "12"),
        Step("The total number of items", "The total number of items", "27"),
        Step("The average is.", "(60+40)/2", "50"),
    ]


def test_several_computations_in_one_sentence_are_several_steps():
    text = "She has 5+3=<<5+3=8>>8 apples and 8*2=<<8*2=16>>16 pears."
    assert rules(text) == [Step("She has", "5+3", "8"), Step("apples and pears.", "8*2", "16")]


def test_non_ascii_text_is_read_like_ascii_text_and_unicode_digits_count():
    # ASCII and other text are matched with two compilations of one pattern: same reading.
    assert rules("Café sells 3*4 = <<3*4=12>>12 buns and 2 + 5 = 7 cakes.") == \
        [Step("Café sells", "3*4", "12"), Step("buns and cakes.", "2+5", "7")]
    assert rules("He has \u0663 + 4 = 7 eggs.") == [Step("He has eggs.", "\u0663+4", "7")]


def test_lines_without_computations_go_into_the_next_meta_and_trailing_ones_are_dropped():
    text = ("Let us think step by step.\n"
            "There are 5 apples in a box.\n"
            "So the boxes hold 4*5 = <<4*5=20>>20 apples.\n"
            "That is a lot of apples.\n"
            "So the answer is 20.")
    assert rules(text) == [Step("Let us think step by step. There are 5 apples in a box. "
                                "So the boxes hold apples.", "4*5", "20")]


def test_final_answer_lines_and_think_blocks():
    text = ("Question echo: 2+2 = 4\n<think>He buys 3*4 = 12 eggs.\nThe final answer is 12."
            "</think>\n\\boxed{12}")
    assert rules(text) == [Step("He buys eggs.", "3*4", "12")]
    assert rules("He buys 3*4 = <<3*4=12>>12 eggs.\n#### 12\nAnd 1+1 = 2 afterwards.") == \
        [Step("He buys eggs.", "3*4", "12")]


@pytest.mark.parametrize("text", ["", "   \n\n", "No numbers here at all.", "There are 5 cats.",
                                  "<<broken", "= = = 5", "#### 7", "<think></think>",
                                  "x" * 10_000 + " 1 + 1 = 2",
                                  # degenerate model output (once quadratic in the regex)
                                  "1" * 20_000 + " = x", "1+" * 5_000 + "= 5",
                                  "(" * 5_000 + "1 = 2", "a" + " " * 40_000 + "1",
                                  "#### " + " " * 40_000 + "x",
                                  # the same with unit words
                                  "1 a + " * 5_000 + "= 2", "1 apples " * 5_000,
                                  "1 apples per day x " * 5_000 + "= 2",
                                  "1 km/day - " * 5_000 + "= 2", "1 km/h/h - " * 5_000 + "= 2",
                                  "1 aa + 1 = 2 aa " * 5_000])
def test_text_without_computations_or_junk_never_raises(text):
    steps = rules(text)
    assert isinstance(steps, list)
    assert all(isinstance(s, Step) for s in steps)


def test_tagged_and_auto_pick_the_right_reading():
    tagged_steps = [Step("Find May's sales.", "48/2", "24")]
    items = [DecomposeInput("q1", render_steps(tagged_steps)),
             DecomposeInput("q2", "Natalia sold 48/2 = <<48/2=24>>24 clips in May."),
             DecomposeInput("q3", "")]
    assert TaggedDecomposer()(items) == [tagged_steps, [], []]
    assert RulesDecomposer()(items)[1:] == [[Step("Natalia sold clips in May.", "48/2", "24")], []]
    assert AutoDecomposer()(items) == [tagged_steps,
                                       [Step("Natalia sold clips in May.", "48/2", "24")], []]


def test_make_decomposer_builds_by_name_and_rejects_unknown_names():
    assert isinstance(make_decomposer("rules"), RulesDecomposer)
    assert isinstance(make_decomposer("tagged"), TaggedDecomposer)
    assert isinstance(make_decomposer("auto"), AutoDecomposer)
    with pytest.raises(InputError, match="unknown decomposer 'magic'.*auto, tagged, rules, gsrm"):
        make_decomposer("magic")


def test_markdown_headings_are_context_not_the_end_of_the_solution():
    text = ("#### Step 1: Clips sold in May\nNatalia sold 48/2 = 24 clips in May.\n"
            "#### Step 2: Total\nShe sold 48+24 = 72 clips in all.\nThe answer is 72.")
    assert rules(text) == [Step("Step 1: Clips sold in May. Natalia sold clips in May.",
                                "48/2", "24"),
                           Step("Step 2: Total. She sold clips in all.", "48+24", "72")]
    assert rules("## Plan:\nHe buys 3*4 = 12 eggs.\n#### Final Answer\nThe answer is 12.") == \
        [Step("Plan: He buys eggs.", "3*4", "12")]
    assert rules("#### 1. Eggs\nHe buys 3*4 = 12 eggs.\n#### 2) Cost\nThey cost 12*2 = 24 "
                 "dollars.") == [Step("1. Eggs. He buys eggs.", "3*4", "12"),
                                 Step("2) Cost. They cost dollars.", "12*2", "24")]
    assert rules("#### 1: Eggs\nHe buys 3*4 = 12 eggs.\n#### 2.Cost\n12*2 = 24.") == \
        [Step("1: Eggs. He buys eggs.", "3*4", "12"), Step("2.Cost.", "12*2", "24")]
    # "#### N" still ends the solution, with or without a space or a dollar sign.
    for marker in ("#### 12", "####12", "#### $12", "#### -3"):
        assert rules(f"He buys 3*4 = 12 eggs.\n{marker}\nAnd 1+1 = 2 afterwards.") == \
            [Step("He buys eggs.", "3*4", "12")]


@pytest.mark.parametrize("text, steps", [
    # LaTeX as instruct models write it: operators, inline-math delimiters, fractions, escaped
    # dollars, LaTeX thousands separators, the typeset minus, bold results.
    (r"She sold \( 48 \div 2 = 24 \) clips in May.",
     [Step("She sold clips in May.", "48/2", "24")]),
    (r"Weng earns \(0.2 \times 50 = 10\) dollars.",
     [Step("Weng earns dollars.", "0.2*50", "10")]),
    (r"For 40 hours she gets \[ 40 \cdot 10 = 400 \] dollars.",
     [Step("For 40 hours she gets dollars.", "40*10", "400")]),
    (r"The rate is \(\frac{12}{60} = 0.2\) dollars per minute.",
     [Step("The rate is dollars per minute.", "12/60", "0.2")]),
    (r"In all she earns \( \$400 + \$60 = \$460 \).",
     [Step("In all she earns.", "400+60", "460")]),
    ("The change is 950 - 1{,}200 = -250 dollars.",
     [Step("The change is dollars.", "950-1200", "-250")]),
    ("Sam has 36 \u2212 24 = 12 cookies left.",
     [Step("Sam has cookies left.", "36-24", "12")]),
    ("She has 3 + 4 = **7** eggs.", [Step("She has eggs.", "3+4", "7")]),
    # A boxed result keeps its computation as a step; a bare boxed answer is no step.
    (r"She sold 48/2 = 24 clips in May. So the total is \[ 48 + 24 = \boxed{72} \]",
     [Step("She sold clips in May.", "48/2", "24"), Step("So the total is", "48+24", "72")]),
    ("She sold 48/2 = 24 clips in May.\nThe total is \\boxed{72}.",
     [Step("She sold clips in May.", "48/2", "24")]),
    # An aligned environment: each row is a line of arithmetic.
    ("First the eggs, then the boxes:\n\\[\n\\begin{aligned}\n3 + 4 &= 7 \\\\\n"
     "7 \\times 2 &= 14\n\\end{aligned}\n\\]",
     [Step("First the eggs, then the boxes", "3+4", "7"), Step("", "7*2", "14")]),
    (r"\begin{align*} 12 \div 4 & = 3 \\ 3 + 5 & = 8 \end{align*}",
     [Step("", "12/4", "3"), Step("", "3+5", "8")]),
    (r"\begin{aligned} 3 + 4 &= 7 + 2 \\ &= 9 \end{aligned}",  # a row that goes on: a chain
     [Step("", "3+4", "7"), Step("", "7+2", "9")]),
])
def test_latex_and_markdown_arithmetic(text, steps):
    assert rules(text) == steps


def test_a_boxed_answer_without_a_computation_is_not_context_for_the_next_step():
    text = "The total is \\boxed{72}.\nThen 72/8 = 9 per box."
    assert rules(text) == [Step("Then per box.", "72/8", "9")]


@pytest.mark.parametrize("text, steps", [
    # The same value written again: one step, its answer the last number.
    ("Sugar: 6 * 3/4 = 18/4 = 4.5 cups.", [Step("Sugar: cups.", "6*3/4", "4.5")]),
    (r"For 6 batches: \[ 6 \times \frac{3}{4} = \frac{18}{4} = 4.5 \]",
     [Step("For 6 batches", "6*3/4", "4.5")]),
    ("The cost is 2 * (3 + 5) = 2 * 8 = 16 dollars.",
     [Step("The cost is dollars.", "2*(3+5)", "16")]),
    # A result carried on into the next computation: two steps.
    ("She has 3 + 4 = 7 + 2 = 9 eggs.", [Step("She has", "3+4", "7"), Step("eggs.", "7+2", "9")]),
    ("In all 12 * 3 = 36 - 6 = 30 left.",
     [Step("In all", "12*3", "36"), Step("left.", "36-6", "30")]),
])
def test_chained_equalities(text, steps):
    assert rules(text) == steps


@pytest.mark.parametrize("text, steps", [
    # Up to two unit words after an operand, left out of the sub-problem; the ones after the
    # result stay in the meta-reasoning, as they do after a computation without units.
    ("20 apples - 5 apples = 15 apples.", [Step("apples.", "20-5", "15")]),
    ("She earns $3 per hour x 4 hours = $12.", [Step("She earns.", "3*4", "12")]),
    ("It takes 2 hours * 60 minutes = 120 minutes.",
     [Step("It takes minutes.", "2*60", "120")]),
    ("The cost is 12 dollars + 8 dollars = 20 dollars.",
     [Step("The cost is dollars.", "12+8", "20")]),
    ("She stores 5 GB + 3 GB = 8 GB.", [Step("She stores GB.", "5+3", "8")]),
    # A lone "x" is the operator, not a unit word; a word may start with an x.
    ("He packs 2 boxes x 3 boxes = 6 boxes.", [Step("He packs boxes.", "2*3", "6")]),
    ("He tunes 4 xylophones x 3 times = 12 times.", [Step("He tunes times.", "4*3", "12")]),
    # Per-units.
    ("She drives 5 km/day * 3 days = 15 km.", [Step("She drives km.", "5*3", "15")]),
    ("He earns $12/hour x 3 hours = $36.", [Step("He earns.", "12*3", "36")]),
    ("He drives 60 km/h * 2 hours = 120 km.", [Step("He drives km.", "60*2", "120")]),
    ("It flows at 3 ft/s x 10 seconds = 30 ft.", [Step("It flows at ft.", "3*10", "30")]),
    ("Café sells 3 buns x 4 = 12 buns.", [Step("Café sells buns.", "3*4", "12")]),
    # Chained, with units on the value carried on.
    ("She has 20 apples - 5 apples = 15 apples - 3 apples = 12 apples.",
     [Step("She has", "20-5", "15"), Step("apples.", "15-3", "12")]),
    ("It is 3 x 4 = 12, so 12 boxes x 2 = 24 boxes.",
     [Step("It is", "3*4", "12"), Step("so boxes.", "12*2", "24")]),
    # Words before a computation that are not followed by an operator stay prose.
    ("Ann is 5 years old and 3 + 4 = 7.", [Step("Ann is 5 years old and.", "3+4", "7")]),
    ("She has 5 apples and 3 + 4 = 7 pears.",
     [Step("She has 5 apples and pears.", "3+4", "7")]),
])
def test_operands_with_unit_words(text, steps):
    assert rules(text) == steps


@pytest.mark.parametrize("text", [
    "She has 5 apples and 3 pears.",
    "In 2 hours she made 5 more = a total of 7.",
    "In 2 hours she made 5 more = 12 in all.",  # no operator: "more" is no computation
    "She has 5 apples and 3 pears = 8 fruits.",
    "She has 5 big red apples + 3 = 8 apples.",  # three words are prose, not units
    "So 2 y + 3 = 7 and 3/n + 2 = 5.",  # algebra's one-letter variables are no units
    "Then 5 m * 3 m = 15.",  # nor a one-letter unit (it could be one)
    # Words after a bare "-", "$" or "(" are prose, not the units of an operand.
    "- Remaining apples - 3 = 7", "Answer - total apples + 3 = 10.",
    "The price in $ per hour x 4 hours = $12.", "( apples + 3 = 5",
])
def test_words_between_numbers_are_not_computations(text):
    assert rules(text) == []


def test_split_pieces_follow_the_computation_groups_in_order():
    # `_sentence_steps` unpacks each computation's groups from `split` by position.
    from rlkd_lite.structure.decomposers import _COMPUTATION

    assert list(_COMPUTATION.groupindex) == ["computation", "expr", "result", "equals", "rhs",
                                             "chain"]
