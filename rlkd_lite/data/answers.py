"""Final answers: find the answer a text commits to, and compare answers by value.

Used by the accuracy reward and by evaluation, so both agree on what counts as right.
"""
from __future__ import annotations

import math
import re

# A number as written in word-problem answers: optional minus and dollar sign, thousands
# commas (only in groups of three, so "1,2,3" is three numbers), decimals (".5" too) and a
# simple fraction "3/4". Not inside a word ("x2") or right after a decimal point.
_DIGITS = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+"
_NUMBER = rf"(?<![\w.])(?:-\s?)?\$?\s?(?:{_DIGITS})(?:\s?/\s?\d+)?"
_NUMBER_RE = re.compile(_NUMBER)
# GSM8K's answer marker is "####" followed by the number; "#### Step 1: ..." is a Markdown
# heading, which instruct models write, and says nothing about the answer.
# Exactly four hashes: "##### 1." is a heading too.
_HASHES_NUMBER_RE = re.compile(rf"(?<!#)####[ \t]*({_NUMBER})")
# So is a numbered heading ("#### 1. Compute the total", "#### 2) Add", "#### 1: Add",
# "#### 1.Add"), whose step number would pass for the marker's: the "#### 1. " is dropped
# before any answer is looked for, the heading's text ("#### 4. Revenue: $18") kept. A number
# ending a sentence or a decimal ("#### 18.", "#### 3.5") stays the marker's.
NUMBERED_HEADING = re.compile(
    r"^[ \t]*####[ \t]*\d+(?:[.)][ \t]+(?=\S)|[.):][ \t]*(?=[^\W\d_]))", re.MULTILINE)
_HASHES_TEXT_RE = re.compile(r"####[ \t]*([^\n]*)")
_ANSWER_PHRASE_RE = re.compile(
    rf"\b(?:final\s+answer|answer)\s*(?:is|:|=)[\s:=*]*({_NUMBER})", re.IGNORECASE)
_BOXED_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BRACE_RE = re.compile(r"[{}]")
_LATEX_FRACTION_RE = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_LATEX_TEXT_RE = re.compile(r"\\(?:text|mathrm|textbf)\s*\{([^{}]*)\}")
_THINK_END = "</think>"
TYPESET_MINUS = "\u2212"
"""The minus sign of typeset math ("−5"), read as "-" wherever numbers are compared."""
_BEFORE_BINARY_MINUS = frozenset("0123456789)")


def extract_final_answer(text: str) -> str | None:
    """The final answer in `text`, cleaned ("$1,234." -> "1234"), or None if there is none.

    Only the part after the last `</think>` is searched when there is one (the reasoning may
    try answers it later drops), the "#### 1. " of numbered headings left out. In
    order of trust: the last `#### N` (a `####` followed by text, e.g. "#### Step 1: ...", is a
    Markdown heading), the last `\\boxed{N}` (nested braces and `\\frac{a}{b}` allowed; a
    box with no number gives its text), the last "the answer is N" / "final answer: N", the
    text of a `####` line that ends the text ("#### B", "#### forty": non-numeric answers
    compare as strings), the last number, else the text of the last `####` line. A minus
    right after a number ("5 - 3") on the same line is a subtraction.
    """
    text = _plain(text)
    if _THINK_END in text:
        text = text.rsplit(_THINK_END, 1)[1]
    text = NUMBERED_HEADING.sub("", text)
    hashes = _HASHES_NUMBER_RE.findall(text)
    if hashes:
        return _clean(hashes[-1])
    boxed = _last_boxed(text)
    if boxed is not None:
        return _number_or_text(_LATEX_TEXT_RE.sub(r"\1", _LATEX_FRACTION_RE.sub(r"\1/\2", boxed)))
    phrases = _ANSWER_PHRASE_RE.findall(text)
    if phrases:
        return _clean(phrases[-1])
    marked = [m.strip() for m in _HASHES_TEXT_RE.findall(text) if m.strip()]
    if marked and text.rstrip().endswith(marked[-1]):
        return _number_or_text(marked[-1])  # GSM8K's marker, a word after it
    number = _last_number(text)
    if number is not None:
        return number
    return _number_or_text(marked[-1]) if marked else None


def last_answer_marker(text: str) -> int | None:
    """Where GSM8K's answer marker, the last `####` followed by a number, begins in `text`
    (None without one). `####` headings ("#### Step 1: ...", "#### 1. Compute") are reasoning:
    cutting at any `####` would drop what follows the first heading."""
    for match in reversed(list(_HASHES_NUMBER_RE.finditer(text))):
        # Only a "####" that opens its line can be a numbered heading's ("#### 1. Compute").
        heading = NUMBERED_HEADING.match(text, text.rfind("\n", 0, match.start()) + 1)
        if heading is None or heading.end() <= match.start():
            return match.start()
    return None


def parse_number(text: str) -> float | None:
    """The value of `text` if it is one number ("$1,234.50", "-3/4", "42.", "1{,}200"), else
    None. A trailing percent sign is dropped: "25%" is 25, as gold answers write it."""
    candidate = _plain(text).strip().rstrip(".").removesuffix("%").rstrip()
    if not _NUMBER_RE.fullmatch(candidate):
        return None
    cleaned = _clean(candidate)
    if "/" in cleaned:
        numerator, denominator = cleaned.split("/")
        return float(numerator) / float(denominator) if float(denominator) else None
    return float(cleaned)


def answers_match(predicted: str | None, gold: str) -> bool:
    """Whether an extracted answer equals the gold one: by value when both are numbers
    (relative tolerance 1e-6, so "0.75" == "3/4" == "0.750"), else as normalised strings."""
    if predicted is None:
        return False
    predicted_value, gold_value = parse_number(predicted), parse_number(gold)
    if predicted_value is not None and gold_value is not None:
        # The tiny absolute tolerance only matters next to zero, where a relative one is exact.
        return math.isclose(predicted_value, gold_value, rel_tol=1e-6, abs_tol=1e-12)
    return _normalise(predicted) == _normalise(gold)


def _plain(text: str) -> str:
    """`text` with a typeset minus sign and LaTeX's "{,}" thousands separator as plain text."""
    return text.replace(TYPESET_MINUS, "-").replace("{,}", ",")


def _last_number(text: str) -> str | None:
    """The last number in `text`, cleaned; None if there is none."""
    last = None
    for last in _NUMBER_RE.finditer(text):
        pass
    if last is None:
        return None
    number = last.group()
    # "5 - 3" is a subtraction: the minus of a number right after a number (or a closing
    # parenthesis) is an operator. A few characters back suffice to see that.
    before = text[max(0, last.start() - 8):last.start()].rpartition("\n")[2]
    if number.startswith("-") and before.rstrip()[-1:] in _BEFORE_BINARY_MINUS:
        number = number[1:]
    return _clean(number)


def _clean(number: str) -> str:
    """A matched number without dollar signs, thousands commas or spaces."""
    return re.sub(r"[$,\s]", "", number)


def _number_or_text(text: str) -> str | None:
    """The last number in a marked answer, else the marked text itself (None if empty)."""
    number = _last_number(text)
    if number is not None:
        return number
    return text.strip().rstrip(".").strip() or None


def _last_boxed(text: str) -> str | None:
    """The contents of the last `\\boxed{...}` whose braces close, nested braces included."""
    boxes = [match.end() for match in _BOXED_RE.finditer(text)]
    if not boxes:
        return None
    # Every brace from the first box on is paired once (scanning ahead from each box was
    # quadratic in degenerate output); a "}" with nothing open is ignored.
    closing_of, open_braces = {}, []
    for brace in _BRACE_RE.finditer(text, boxes[0] - 1):
        if brace.group() == "{":
            open_braces.append(brace.start())
        elif open_braces:
            closing_of[open_braces.pop()] = brace.start()
    for start in reversed(boxes):
        close = closing_of.get(start - 1)
        if close is not None:
            return text[start:close]
    return None


def _normalise(answer: str) -> str:
    return " ".join(answer.casefold().split()).rstrip(".").strip()
