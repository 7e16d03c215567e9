"""The step format: a reasoning path as (meta-reasoning, sub-problem, answer) steps.

The canonical text form (README, "How the structure reward works") is written by
`render_steps` and read back by `parse_steps`. The parser is deliberately tolerant because it
reads model output: it never raises, and text it cannot read simply yields fewer (or no) steps.
"""
from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a reasoning path: (meta-reasoning, sub-problem, answer)."""

    meta: str
    """Why this sub-problem is next; must not state the answer."""
    query: str
    """The one sub-problem this step solves."""
    answer: str
    """The short answer to the sub-problem, no reasoning."""


_META, _QUERY, _ANSWER = 0, 1, 2
"""Part kinds, in the order they appear within a step."""

# Tag names -> part kind. Besides ours, the authors' release uses [Meat-reasoning i] (sic) in
# its prompts and [sub-think i]/[Query i] in its parser; accepting all of them makes their data
# usable. Spaces, hyphens and underscores inside the name are all accepted.
_TAG_KINDS = {
    "metareasoning": _META, "meatreasoning": _META, "subthink": _META,
    "subproblem": _QUERY, "query": _QUERY,
    "answer": _ANSWER,
}
_META_OR_QUERY_NAMES = (r"meta[\s_-]*reasoning|meat[\s_-]*reasoning|sub[\s_-]*think|"
                        r"sub[\s_-]*problem|query")
# A tag may be set in bold or italics as a whole ("**[Answer 1]:** 18", "*[Answer 1]*: 18",
# "**[Answer 1]: 18**"): the markers go with it (`shut` when they close right at the tag); an
# answer's own emphasis after the colon ("[Answer 1]: **18**") stays. Each whitespace run has
# one place to match, so a long run cannot make matching slow.
_TAG = re.compile(rf"(?P<em>\*\*|__|\*|_)?\[\s*(?P<name>{_META_OR_QUERY_NAMES}|answer)\s*"
                  rf"(?:\d+\s*)?\](?(em)(?:(?P<shut>(?P=em))\s*:?|\s*(?::(?P<shut_after_colon>"
                  rf"(?P=em))?)?)|\s*:?)", re.IGNORECASE)
# The beginning of a tag, cut off where a generation stopped ("[Meta-reas", "**[Answer 2").
_TAG_START = re.compile(r"[*_]*\[\s*([a-z][a-z_-]*(?:\s+[a-z_-]+)*)\s*\d*", re.IGNORECASE)
TAG_START_LETTERS = 3
"""Letters of a tag's name that tell it from text in brackets ("[a, b]", "[Q: check]")."""
_STEP_START_TAG = re.compile(rf"\[\s*(?:{_META_OR_QUERY_NAMES})\s*(?:\d+\s*)?\]", re.IGNORECASE)
_TAG_NAME_JUNK = re.compile(r"[\s_-]+")
# A closing "So the final answer is 72." / "Final answer: 72" / "#### 72" / "### Final Answer"
# after the last step's own text belongs to the whole solution, not to the last sub-problem's
# answer. Its opening emphasis ("**The final answer is 4**") goes with it; a marker right after
# a letter or digit closes the part's own ("**4** the final answer is 4"), and the phrase must
# not start inside a word.
_TRAILER = re.compile(
    r"(?:(?<![\w*])[*_]+)?(?:(?<![^\W_])(?:(?:so|thus|therefore|hence|also)\b[\s,]*)?"
    r"(?:the\s+)?final\s+answer\s*(?:is\b|:)"
    r"|(?P<heading>####|#+[ \t]*(?:the\s+)?final\s+answer\b))",
    re.IGNORECASE,
)
_LIST_MARKER = r"(?:[-*+•]|\d+[.)])"
# A list item's marker left alone on the last line when its text was the closing phrase
# ("72\n- The final answer is 72").
_BARE_LIST_MARKER = re.compile(rf"\n[ \t]*{_LIST_MARKER}[ \t]*$")
# Layout that LLMs write around tags, which sets steps out rather than saying anything: list
# markers, heading hashes and emphasis before a tag on its line ("- [Answer 1]", "### [Answer
# 1]", "2. [Sub-problem 1]"), and lines of only such markers or a separator ("---", "***"),
# step labels ("**Step 2**", "Step 2:", "## Step 2: Find the total") and code fences. A number
# is a list marker only before a tag: alone on a line it may be an answer ("The count is\n2.").
# These match stripped lines, each once, and each has one way to match a run of markers.
_LAYOUT = r"[-*+•_#\s]*"
_LAYOUT_LINE = re.compile(_LAYOUT)
_TAG_LINE_LAYOUT = re.compile(rf"{_LIST_MARKER}?{_LAYOUT}")
_STEP_LABEL = re.compile(rf"(?P<layout>{_LIST_MARKER}?{_LAYOUT})step\s*\d+\b(?P<title>.*)",
                         re.IGNORECASE)
_CODE_FENCE = re.compile(r"^[ \t]*(?:`{3,}[^`\n]*|~{3,}[^\n]*)$", re.MULTILINE)
_WORD_CHAR = re.compile(r"[^\W_]")
_DIGIT = re.compile(r"\d")

_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"


def think_text(text: str) -> str:
    """The reasoning inside `<think>...</think>`; the whole text when there is no think block.

    An unclosed `<think>` runs to the end of the text (a completion cut off by the token limit).
    A `</think>` without an opening tag (chat templates that put `<think>` in the prompt) makes
    everything before it the reasoning.
    """
    start = text.find(_THINK_OPEN)
    if start >= 0:
        start += len(_THINK_OPEN)
        end = text.find(_THINK_CLOSE, start)
        return text[start:] if end < 0 else text[start:end]
    end = text.find(_THINK_CLOSE)
    return text if end < 0 else text[:end]


def render_steps(steps: Sequence[Step]) -> str:
    """The canonical tagged text of `steps`, numbered from 1, one tag per line."""
    return "\n".join(
        f"[Meta-reasoning {i}]: {step.meta}\n[Sub-problem {i}]: {step.query}\n"
        f"[Answer {i}]: {step.answer}"
        for i, step in enumerate(steps, 1)
    )


def looks_tagged(text: str) -> bool:
    """Whether `text` is written in the step tag format (has a meta-reasoning or sub-problem
    tag)."""
    return _STEP_START_TAG.search(text) is not None


def begins_tag(line: str) -> bool:
    """Whether `line` is only the beginning of a tag ("[Meta-reas", "**[Answer 2"), with at
    least `TAG_START_LETTERS` letters of its name: "[0, 1)", "[a, b]" or "[the docs" is text."""
    match = _TAG_START.fullmatch(line.strip())
    name = _TAG_NAME_JUNK.sub("", match.group(1).lower()) if match else ""
    return (len(name) >= TAG_START_LETTERS
            and any(known.startswith(name) for known in _TAG_KINDS))


def parse_steps(text: str) -> list[Step]:
    """Read tagged steps from `text` (model output or data); never raises.

    Rules, in the order they apply:
    - only the reasoning inside `<think>...</think>` counts (see `think_text`);
    - tags are matched case-insensitively, with or without index and colon, and the authors'
      tag names are accepted (`[sub-think i]`, `[Query i]`, `[Meat-reasoning i]`);
    - text before the first tag is ignored;
    - tag indices are not trusted (models miscount): the order of the tags defines the steps.
      A tag starts a new step when its part comes at or before the previous part's place in
      meta -> sub-problem -> answer order, e.g. two answers in a row are two steps;
    - layout between steps is no part's text: a list marker, heading hashes or emphasis before
      a tag on its line, and, at a part's end, lines of only such markers, separators ("---"),
      step labels ("**Step 2**", "Step 2:", "## Step 2: Find the total") or code fences (but
      not one that closes a block the part opened); a part's other lines are its own (an
      answer may go on: "\\[ ... \\]", a list);
    - a part a step lacks is ""; a step with all three parts empty is dropped;
    - a closing "So the final answer is ..." or "#### ..." after the last part's own text is
      cut from it, with the emphasis that opens it ("**The final answer is 4**"); a part that
      is only such a phrase is kept as it is.
    Text without any tag gives [].
    """
    text = think_text(text)
    tags = list(_TAG.finditer(text))
    if not tags:
        return []
    steps: list[Step] = []
    parts = ["", "", ""]
    last_kind = -1
    for n, tag in enumerate(tags):
        kind = _TAG_KINDS[_TAG_NAME_JUNK.sub("", tag.group("name").lower())]
        end = tags[n + 1].start() if n + 1 < len(tags) else len(text)
        body = _without_layout(text[tag.end():end], tag_follows=n + 1 < len(tags))
        if tag.group("em") and not (tag.group("shut") or tag.group("shut_after_colon")):
            body = _without_tag_closer(body, tag.group("em"))
        if n + 1 == len(tags):
            body = _without_trailer(body)
        if kind <= last_kind:
            _append_step(steps, parts)
            parts = ["", "", ""]
        parts[kind] = body.strip()
        last_kind = kind
    _append_step(steps, parts)
    return steps


def _without_tag_closer(body: str, emphasis: str) -> str:
    """`body` without the marker at its end that closes its tag's emphasis ("**[Answer 1]:
    18**"), unless it is the part's own ("**[Answer 1]:\n**18**", "*[Answer 1]: **18**")."""
    own = body.strip()
    if (own.endswith(emphasis) and not own.startswith(emphasis)
            and not own.endswith(emphasis[0] * (len(emphasis) + 1))):
        return body.rstrip()[:-len(emphasis)]
    return body


def _without_trailer(body: str) -> str:
    """`body` up to its closing "the final answer is" / "####", if text comes before it."""
    first_digit = _DIGIT.search(body)
    for trailer in _TRAILER.finditer(body):
        if (first_digit is not None and first_digit.start() >= trailer.start()
                and not trailer.group("heading")):
            continue  # the part's only numbers follow the phrase: its own (quick, see below)
        before = _BARE_LIST_MARKER.sub("", body[:trailer.start()].rstrip())
        # Never empty a part, nor cut the only number it has with a phrase ("Adding up, the
        # final answer is 72."): then the phrase is the part's own text. A heading never is.
        own_number = not _DIGIT.search(before) and _DIGIT.search(body, trailer.end())
        if before.strip() and (trailer.group("heading") or not own_number):
            # Layout between the part's text and the phrase goes too ("72\n---\n**Final
            # answer: 72**"); a part that is only layout and the phrase stays as it was.
            text = _without_layout(before, tag_follows=False)
            return (text if text.strip() else before).rstrip(" \t\n,;(")
    return body


def _without_layout(body: str, tag_follows: bool) -> str:
    """`body` without the layout at its end (see `_LAYOUT`): what stands before the next tag on
    its line (`tag_follows`), then whole lines of layout. Its first line, on its own tag's
    line, is always the part's."""
    end = len(body)
    line_start = body.rfind("\n") + 1
    if tag_follows and line_start and _TAG_LINE_LAYOUT.fullmatch(body[line_start:].strip()):
        end = line_start - 1
    last_fence_end = None  # of the highest fence dropped so far
    while line_start := body.rfind("\n", 0, end) + 1:
        line = body[line_start:end]
        if _CODE_FENCE.fullmatch(line):
            last_fence_end = end
        elif not _is_layout_line(line.strip()):
            break
        end = line_start - 1
    # A fence after a part that opened a block ("[Answer 1]: ```py ...") closes the part's.
    if last_fence_end is not None and len(_CODE_FENCE.findall(body, 0, end)) % 2:
        end = last_fence_end
    return body[:end]


def _is_layout_line(line: str) -> bool:
    """Whether the stripped `line` only sets steps out: markers, a separator or a step label.
    A label's title ("Step 2: Find the total") makes it text unless the label is a heading or
    emphasised: a plain line that goes on may be a part's own ("Step 2 of the plan adds")."""
    if _LAYOUT_LINE.fullmatch(line):
        return True
    label = _STEP_LABEL.fullmatch(line)
    return label is not None and (any(mark in label["layout"] for mark in "#*_")
                                  or not _WORD_CHAR.search(label["title"]))


def _append_step(steps: list[Step], parts: list[str]) -> None:
    if any(parts):
        steps.append(Step(*parts))


def steps_to_dicts(steps: Sequence[Step]) -> list[dict[str, str]]:
    """Steps as JSON-ready objects {meta, query, answer} (the `steps` field of our JSONL)."""
    return [{"meta": s.meta, "query": s.query, "answer": s.answer} for s in steps]


def steps_to_json(steps: Sequence[Step]) -> str:
    """Steps as one JSON string: how teacher steps travel through a `datasets` column."""
    return json.dumps(steps_to_dicts(steps), ensure_ascii=False)


def steps_from_json(text: str) -> list[Step]:
    """The inverse of `steps_to_json`; an empty string means no steps."""
    return [Step(**s) for s in json.loads(text)] if text else []
