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
# "the answer is 72", "Final answer: $72"; after a "Final Answer:" label a few words may come
# first ("It takes Carla 160 minutes"); the computation may be written out ("the answer is
# 18 + 4 = 22": its result). The words and the computation start with what the run of spaces
# before them cannot hold, and repeats are bounded: each attempt stays short.
_ANSWER_PHRASE_RE = re.compile(
    r"\b(?:final\s+answer\s*:[\s*]*(?:[^\d\s*$-][^\d\n]{0,80}?)?"
    r"|(?:final\s+answer|answer)\s*(?:is|:|=)[\s:=*]*)"
    rf"(?:[\d($-][\d \t.,$%()+*/x×÷^-]{{0,80}}=[ \t*]*)?({_NUMBER})", re.IGNORECASE)
_BOXED_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BRACE_RE = re.compile(r"[{}]")
_LATEX_FRACTION_RE = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_LATEX_TEXT_RE = re.compile(r"\\(?:text|mathrm|textbf)\s*\{([^{}]*)\}")
_LATEX_DIGIT_SPACE_RE = re.compile(r"(?<=\d)\\[,;: ](?=\d)")
_LATEX_OPERATORS = {"times": "×", "cdot": "×", "div": "÷"}
_LATEX_OPERATOR_RE = re.compile(r"\\(times|cdot|div)(?![A-Za-z])")
_LATEX_BOXED_RE = re.compile(r"\\(?:boxed|fbox)\s*\{([^{}]*)\}")
_LATEX_LAYOUT_RE = re.compile(r"\\[()\[\],;: ]|\\(?:left|right|q?quad)(?![A-Za-z])")
# Aligned equations: "\begin{aligned} 3 + 4 &= 7 \\ 7 \times 2 &= 14 \end{aligned}". The
# environment goes, each "\\" row becomes a line (group 1) unless the next row goes on with
# "&=" ("3 + 4 &= 7 + 2 \\ &= 9", one chain), and the alignment mark before "=" goes, so
# that every row reads as the arithmetic it is.
_LATEX_ALIGNED_RE = re.compile(
    r"\\(?:begin|end)\{(?:aligned|align|split|gathered|eqnarray)\*?\}|\\\\(?=\s*&)|(\\\\)"
    r"|&[ \t]*(?==)")
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
        return _number_or_text(plain_math(boxed))
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


def answer_markers(text: str) -> list[int]:
    """Where GSM8K's answer markers, `####` followed by a number, begin in `text`. `####`
    headings ("#### Step 1: ...", "#### 1. Compute") are reasoning, not markers."""
    if "####" not in text:
        return []
    headings = {match.start() + match.group().index("####")
                for match in NUMBERED_HEADING.finditer(text)}
    return [match.start() for match in _HASHES_NUMBER_RE.finditer(text)
            if match.start() not in headings]


def last_answer_marker(text: str) -> int | None:
    """Where the last answer marker (`answer_markers`) begins, None without one: where the
    reasoning of a GSM8K-style solution ends (cutting at any `####` would drop what follows the
    first heading)."""
    markers = answer_markers(text)
    return markers[-1] if markers else None


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
    """`text` with numbers spelled plainly: the typeset minus sign, LaTeX's thousands separators
    ("1{,}500", "1,\\!500", "1\\,500") and escaped dollar sign ("\\$250")."""
    text = text.replace(TYPESET_MINUS, "-")
    if "{" in text:  # looking for one character is much quicker than for "{,}"
        text = text.replace("{,}", ",")
    if "\\" not in text:  # no LaTeX, as in most text: no more scans for it
        return text
    return _LATEX_DIGIT_SPACE_RE.sub("", text.replace("\\$", "$").replace("\\!", ""))


def plain_math(text: str, keep_boxed: bool = False) -> str:
    """`text` with the LaTeX that models write around arithmetic as plain text: numbers as
    `_plain` spells them, `\\times` and `\\cdot` as "×", `\\div` as "÷", `\\frac{a}{b}` as
    "a/b", `\\text{...}` as its text, `\\boxed{...}` as its contents (unless `keep_boxed`),
    no math delimiters (`\\( \\) \\[ \\]`, `\\left`, `\\right`) or spacing commands, and an
    aligned environment's rows as lines."""
    text = _plain(text)
    if "\\" not in text:
        return text
    if "&" in text or "\\begin" in text:
        text = _LATEX_ALIGNED_RE.sub(lambda m: "\n" if m.group(1) else "", text)
    text = _LATEX_OPERATOR_RE.sub(lambda m: _LATEX_OPERATORS[m.group(1)], text)
    text = _LATEX_TEXT_RE.sub(r"\1", _LATEX_FRACTION_RE.sub(r"\1/\2", text))
    if not keep_boxed:
        text = _LATEX_BOXED_RE.sub(r"\1", text)
    return _LATEX_LAYOUT_RE.sub(" ", text)


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
