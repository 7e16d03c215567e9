"""The step format: rendering, tolerant parsing, think blocks."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rlkd_lite.structure.steps import Step, looks_tagged, parse_steps, render_steps, think_text

TWO_STEPS = [Step("Find the clips sold in May.", "48/2", "24"),
             Step("Add both months.", "48+24", "72")]


def test_render_is_the_canonical_format():
    assert render_steps(TWO_STEPS) == (
        "[Meta-reasoning 1]: Find the clips sold in May.\n[Sub-problem 1]: 48/2\n[Answer 1]: 24\n"
        "[Meta-reasoning 2]: Add both months.\n[Sub-problem 2]: 48+24\n[Answer 2]: 72"
    )
    assert render_steps([]) == ""


# Parts as a parser sees them: stripped, no brackets (so no tag-like text), and not starting
# with the closing-answer phrase the parser cuts.
_part = st.text(st.characters(blacklist_characters="[]", blacklist_categories=("Cs",)),
                max_size=30) \
    .map(str.strip).filter(lambda s: "final answer" not in s.lower() and "####" not in s
                           and "<think>" not in s and "</think>" not in s)
_step = st.builds(Step, _part, _part, _part).filter(lambda s: s.meta or s.query or s.answer)


@given(st.lists(_step, max_size=6))
def test_parse_reads_back_what_render_writes(steps):
    assert parse_steps(render_steps(steps)) == steps


def test_parse_accepts_the_authors_tags_any_case_spacing_and_missing_colons():
    text = ("Let me decompose this.\n"
            "[sub-think 1] find the total \n[QUERY 1]:   what is 2+3\n[answer 1]  5\n"
            "[ Meat-reasoning 2 ]: then double it\n[Sub problem 2]: 5*2\n[Answer 2]: 10")
    assert parse_steps(text) == [Step("find the total", "what is 2+3", "5"),
                                 Step("then double it", "5*2", "10")]


def test_parse_drops_the_closing_final_answer_from_the_last_answer():
    text = "[Meta-reasoning 1]: m\n[Sub-problem 1]: q\n[Answer 1]: 72\nSo the final answer is 72."
    assert parse_steps(text) == [Step("m", "q", "72")]
    assert parse_steps("[Meta-reasoning 1]: m\n[Sub-problem 1]: q\n[Answer 1]: 72\n#### 72") == \
        [Step("m", "q", "72")]


def test_parse_keeps_a_last_part_that_is_itself_the_closing_phrase():
    head = "[Meta-reasoning 1]: m\n[Sub-problem 1]: q\n"
    assert parse_steps(head + "[Answer 1]: So the final answer is 72.") == \
        [Step("m", "q", "So the final answer is 72.")]
    assert parse_steps(head + "[Answer 1]: #### 72") == [Step("m", "q", "#### 72")]
    # After the part's own text, on its line or a later one, the phrase is cut.
    assert parse_steps(head + "[Answer 1]: 72, so the final answer is 72.") == \
        [Step("m", "q", "72")]
    assert parse_steps(head + "[Answer 1]: $123. So the final answer is 123.") == \
        [Step("m", "q", "$123.")]
    assert parse_steps(head + "[Answer 1]: 12 (the final answer is 72)") == [Step("m", "q", "12")]
    assert parse_steps(head + "[Answer 1]: 72, also the final answer is 72.") == \
        [Step("m", "q", "72")]
    # Not inside a word, and never the part's only number.
    assert parse_steps(head + "[Answer 1]: 5 semifinal answer is") == \
        [Step("m", "q", "5 semifinal answer is")]
    assert parse_steps(head + "[Answer 1]: Adding them up, the final answer is 72.") == \
        [Step("m", "q", "Adding them up, the final answer is 72.")]
    assert parse_steps(head + "[Answer 1]: seventy-two\n#### 72") == \
        [Step("m", "q", "seventy-two")]  # a closing "####" is always the solution's
    assert parse_steps(head + "[Answer 1]:\nThe final answer is 72.\n#### 72") == \
        [Step("m", "q", "The final answer is 72.")]
    assert parse_steps(head + "[Answer 1]: 72\n\nTherefore, the final answer is 72.") == \
        [Step("m", "q", "72")]


def test_parse_cuts_a_closing_phrase_in_bold_with_its_emphasis_markers():
    head = "[Meta-reasoning 1]: m\n[Sub-problem 1]: q\n"
    assert parse_steps(head + "[Answer 1]: 4\n**The final answer is 4**") == [Step("m", "q", "4")]
    assert parse_steps(head + "[Answer 1]: 25 km. **So the final answer is 25.**") == \
        [Step("m", "q", "25 km.")]
    assert parse_steps(head + "[Answer 1]: 4\n*The final answer is 4.*") == [Step("m", "q", "4")]
    assert parse_steps(head + "[Answer 1]: 4 (__the final answer is 4__)") == \
        [Step("m", "q", "4")]
    assert parse_steps(head + "[Answer 1]: 72\n**#### 72**") == [Step("m", "q", "72")]
    # The part's own emphasis stays, even right before the phrase.
    assert parse_steps(head + "[Answer 1]: **4**\n**The final answer is 4**") == \
        [Step("m", "q", "**4**")]
    assert parse_steps(head + "[Answer 1]: **4** the final answer is 4") == \
        [Step("m", "q", "**4**")]
    assert parse_steps(head + "[Answer 1]: *about* 4 **so the final answer is 4**") == \
        [Step("m", "q", "*about* 4")]
    assert parse_steps(head + "[Answer 1]: **So the final answer is 72.**") == \
        [Step("m", "q", "**So the final answer is 72.**")]


@pytest.mark.parametrize("closing", [
    "### Final Answer\n\\boxed{72}",
    "#### Final Answer: 72",
    "**Final answer: 72**",
    "**Final Answer:** 72",
    "Final answer: 72.",
    "- The final answer is 72.",        # a list item: its marker goes too
    "* **Final answer:** 72",
    "2. Final answer: 72",
])
def test_parse_cuts_closing_headings_labels_and_list_items(closing):
    head = "[Meta-reasoning 1]: m\n[Sub-problem 1]: q\n"
    assert parse_steps(f"{head}[Answer 1]: 72\n{closing}") == [Step("m", "q", "72")]


def test_parse_keeps_final_answer_words_that_are_not_a_closing_phrase():
    head = "[Meta-reasoning 1]: m\n[Sub-problem 1]: q\n"
    for own in ("The final answer depends on 7", "Final answer: 72", "7 - 2\n- 5 more"):
        assert parse_steps(f"{head}[Answer 1]: {own}") == [Step("m", "q", own)]


@pytest.mark.parametrize("junk", ["\n" * 20_000, " " * 20_000, "\t\n" * 10_000, "#" * 20_000])
def test_parse_of_degenerate_model_output_after_the_last_tag(junk):
    # RL policies do collapse into runs of newlines (once quadratic in the closing-phrase regex).
    head = "[Meta-reasoning 1]: m\n[Sub-problem 1]: q\n[Answer 1]: 7"
    assert parse_steps(head + junk) == [Step("m", "q", "7")]
    assert parse_steps(head + junk + "The final answer is 7.") == [Step("m", "q", "7")]


def test_parse_of_repeated_closing_phrases_before_the_only_number():
    # Each phrase is the part's own text (no number before it); once quadratic to find out.
    body = "final answer: " * 5_000 + "1"
    assert parse_steps("[Answer 1]: " + body) == [Step("", "", body)]


def test_parse_gives_empty_parts_for_missing_tags_and_splits_on_tag_order():
    # Indices are ignored: two sub-problems in a row are two steps, whatever their numbers.
    text = "[Sub-problem 1]: q1\n[Answer 1]: a1\n[Sub-problem 1]: q2\n[Meta-reasoning 3]: m3"
    assert parse_steps(text) == [Step("", "q1", "a1"), Step("", "q2", ""), Step("m3", "", "")]


def test_parse_of_malformed_or_untagged_text_never_raises():
    assert parse_steps("") == []
    assert parse_steps("Natalia sold 48/2 = 24 clips.") == []
    assert parse_steps("[Meta-reasoning 1]:\n[Sub-problem 1]:\n[Answer 1]:") == []  # all empty
    assert parse_steps("[Answer 1]: 4 [Answer 2]: 5") == [Step("", "", "4"), Step("", "", "5")]
    assert parse_steps("[Meta-reasoning 1: unclosed [Sub-problem 1]: q") == [Step("", "q", "")]


def test_think_block_inside_counts_only():
    assert think_text("prompt echo <think>reason</think> final") == "reason"
    assert think_text("<think>cut off by the token limit") == "cut off by the token limit"
    # template put <think> in the prompt
    assert think_text("reasoning</think> answer") == "reasoning"
    assert think_text("no block") == "no block"
    tagged = "[Meta-reasoning 1]: outside\n[Sub-problem 1]: x\n[Answer 1]: 1"
    inner = "[Meta-reasoning 1]: inside\n[Sub-problem 1]: y\n[Answer 1]: 2"
    assert parse_steps(f"{tagged}<think>{inner}</think>{tagged}") == [Step("inside", "y", "2")]
    assert parse_steps(f"<think>{inner}") == [Step("inside", "y", "2")]


def test_looks_tagged():
    assert looks_tagged(render_steps(TWO_STEPS))
    assert looks_tagged("[sub-think 1]: x")
    assert not looks_tagged("Natalia sold 48/2 = <<48/2=24>>24 clips in May.")
    assert not looks_tagged("[Answer]: 5")  # an answer tag alone is not a step structure


@pytest.mark.parametrize("text", [
    "**[Meta-reasoning 1]:** m\n**[Sub-problem 1]:** q\n**[Answer 1]:** 18",
    "**[Meta-reasoning 1]**: m\n**[Sub-problem 1]**: q\n**[Answer 1]**: 18",
    "__[Meta-reasoning 1]:__ m\n__[Sub-problem 1]:__ q\n__[Answer 1]:__ 18",
    "**[Meta-reasoning 1]: m**\n**[Sub-problem 1]: q**\n**[Answer 1]: 18**",
])
def test_tags_set_in_bold_or_italics_take_their_markers_with_them(text):
    assert parse_steps(text) == [Step("m", "q", "18")]


@pytest.mark.parametrize("text", [
    "*[Meta-reasoning 1]:* m\n*[Sub-problem 1]:* q\n*[Answer 1]:* 18",
    "_[Meta-reasoning 1]_: m\n_[Sub-problem 1]_: q\n_[Answer 1]_: 18",
])
def test_tags_in_italics_too(text):
    assert parse_steps(text) == [Step("m", "q", "18")]


@pytest.mark.parametrize(("text", "answer"), [
    ("**[Answer 1]:\n**18**", "**18**"), ("*[Answer 1]: **18**", "**18**"),
    ("_[Answer 1]: __init__", "__init__"), ("*[Answer 1] *x* is 5", "*x* is 5"),
    ("*[Answer 1]: the answer is **18**", "the answer is **18**"),
])
def test_only_markers_that_close_the_tags_emphasis_are_cut(text, answer):
    assert parse_steps(text) == [Step("", "", answer)]


@pytest.mark.parametrize("tag", ["[{}]:", "**[{}]:**", "__[{}]:__", "*[{}]*:"])
def test_a_parts_own_emphasis_is_kept_whatever_its_tag(tag):
    meta, answer = tag.format("Meta-reasoning 1"), tag.format("Answer 1")
    assert parse_steps(f"{meta} We need **the total**, not __init__\n{answer} **18**") == \
        [Step("We need **the total**, not __init__", "", "**18**")]


# --- Markdown that lays the steps out --------------------------------------------------------

MAY = "[Meta-reasoning 1]: Find May sales.\n[Sub-problem 1]: 48/2\n[Answer 1]: 24"
TOTAL = "[Meta-reasoning 2]: Add both months.\n[Sub-problem 2]: 48+24\n[Answer 2]: 72"
MAY_AND_TOTAL = [Step("Find May sales.", "48/2", "24"), Step("Add both months.", "48+24", "72")]


@pytest.mark.parametrize("between", [
    "\n\n**Step 2**\n", "\n### Step 2\n", "\n### Step 2:\n", "\nStep 2:\n", "\nStep 2\n",
    "\n## Step 2: Find the total\n", "\n**Step 2:** Add them up\n", "\n*Step 2.*\n",
    "\n---\n", "\n***\n", "\n___\n", "\n\n---\n\n### Step 2\n\n", "\n-\n", "\n  * \n",
    "\n```\n\n```\n",                       # each step in a code block of its own
    "\n**Step 2:** ", "\nStep 2: ", "\n### Step 2 - ",  # a step label on the tag's line
])
def test_step_labels_and_separators_between_steps_are_no_part_of_either(between):
    assert parse_steps(f"**Step 1**\n{MAY}{between}{TOTAL}") == MAY_AND_TOTAL


@pytest.mark.parametrize("marker", ["- ", "* ", "+ ", "• ", "  - ", "### ", "## ", "#"])
def test_list_markers_and_heading_hashes_before_tags_go_with_the_tags(marker):
    text = "\n".join(marker + line for line in f"{MAY}\n{TOTAL}".split("\n"))
    assert parse_steps(text) == MAY_AND_TOTAL
    bold = text.replace("[", "**[").replace("]:", "]:**")  # "- **[Answer 1]:** 24"
    assert parse_steps(bold) == MAY_AND_TOTAL


def test_numbered_tags_leave_no_numbers_on_the_part_before():
    lines = f"{MAY}\n{TOTAL}".split("\n")
    assert parse_steps("\n".join(f"{i}. {line}" for i, line in enumerate(lines, 1))) == \
        MAY_AND_TOTAL
    assert parse_steps("\n".join(f"{i}) {line}" for i, line in enumerate(lines, 1))) == \
        MAY_AND_TOTAL


@pytest.mark.parametrize("text", [
    f"```\n{MAY}\n{TOTAL}\n```",
    f"```text\n{MAY}\n{TOTAL}\n```\n",
    f"```\n{MAY}\n```\n\n```\n{TOTAL}\n```",
    f"~~~\n{MAY}\n\n---\n{TOTAL}\n~~~",
    f"{MAY}\n{TOTAL}\n\n---",
    f"{MAY}\n{TOTAL}\n\n---\n\n**Final answer: 72**",
    f"{MAY}\n{TOTAL}\n```\n\nSo the final answer is 72.",
])
def test_separators_and_fences_after_the_last_step_are_no_part_of_it(text):
    assert parse_steps(text) == MAY_AND_TOTAL


@pytest.mark.parametrize("own", [
    "\\[\n24 - 18 = 6\n\\]", "- 6 muffins\n- 2 given away", "1. 6 muffins\n2. 2 given away",
    "The intervals are\n[0, 1] and [2, 3]", "24 - 18\n= 6 muffins", "The count is\n2.",
    "```python\nx = 48 // 2\n```", "```\n24\n```", "Half of 48:\n**24**",
    "Half of 48\nStep 2 of the plan adds them", "$$\n24\n$$", "24 clips\n- 48 in April",
])
@pytest.mark.parametrize("next_tag", ["\n", "\n- ", "\n**Step 2**\n", "\n```\n", "\n2. "])
def test_a_parts_own_lines_stay_whatever_lays_out_the_next_step(own, next_tag):
    head = "[Meta-reasoning 1]: m\n[Sub-problem 1]: q\n[Answer 1]:"
    steps = parse_steps(f"{head} {own}{next_tag}[Meta-reasoning 2]: m2\n[Answer 2]: {own}")
    assert steps == [Step("m", "q", own), Step("m2", "", own)]
    assert parse_steps(f"[Meta-reasoning 1]: {own}{next_tag}[Sub-problem 1]: q") == \
        [Step(own, "q", "")]


@pytest.mark.parametrize("junk", [
    "\n" * 40_000, "\n---" * 10_000, "\n**Step 2**" * 4_000, "\nStep 2" * 6_000,
    "\n```" * 10_000, "\n" + "#" * 40_000, "\n" + "- " * 20_000, "\n" + "**" * 20_000,
    "\n" + "### Step 2" * 4_000,
])
def test_degenerate_layout_between_steps_is_dropped_in_linear_time(junk):
    # ~40k characters: quadratic work on them (a scan per line or per marker) takes minutes.
    assert parse_steps(f"{MAY}{junk}{TOTAL}") == MAY_AND_TOTAL


@pytest.mark.parametrize("junk", ["[" * 40_000, "\n[" * 20_000, "\n2." * 13_000,
                                  "\nStep" * 8_000, "```" * 13_000, "\n" + "Step 2 " * 6_000])
def test_degenerate_text_between_steps_is_kept_in_linear_time(junk):
    steps = parse_steps(f"{MAY}{junk}\n{TOTAL}")
    assert steps == [Step("Find May sales.", "48/2", ("24" + junk).rstrip()), MAY_AND_TOTAL[1]]
