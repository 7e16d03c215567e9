"""Decomposers: turn (question, reasoning) into steps, in batches.

A decomposer is any callable taking a sequence of `DecomposeInput` and returning one step list
per input; an empty list means "no steps" (unreadable or empty reasoning). Decomposers never
raise on bad text. The ones here need no model: `tagged` parses the step tag format, `rules`
segments GSM8K-style solutions, `auto` picks one of the two per text. `gsrm` (the model with
the gsrm adapter) lives in `rlkd_lite.structure.llm` and is imported only when asked for.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from rlkd_lite.data.answers import NUMBERED_HEADING, plain_math
from rlkd_lite.errors import InputError
from rlkd_lite.structure.judges import arithmetic_value
from rlkd_lite.structure.steps import Step, looks_tagged, parse_steps, think_text


@dataclass(frozen=True, slots=True)
class DecomposeInput:
    """A reasoning path to decompose, with the question it answers (may be "")."""

    question: str
    reasoning: str


class Decomposer(Protocol):
    """Anything that decomposes a batch of reasoning paths at once."""

    def __call__(self, items: Sequence[DecomposeInput]) -> list[list[Step]]: ...


class TaggedDecomposer:
    """The reasoning is already in the tag format: parse it (see `parse_steps`)."""

    def __call__(self, items: Sequence[DecomposeInput]) -> list[list[Step]]:
        return [parse_steps(item.reasoning) for item in items]


_NUMBER = r"-?\d[\d,]*(?:\.\d+)?%?"
_OPERATOR = r"[-+*/x×÷^]"
_OPERAND = r"[$(\d-][\d,.%$()]{0,40}"
# A unit word after an operand: "20 apples - 5 apples", "$3 per hour x 4 hours", or a per-unit
# ("5 km/day", "$12/hour": "/" before letters is no division). Two letters at least: the
# operator "x" ("2 boxes x 3 boxes") and algebra's variables ("2 y + 3 = 7") are no unit
# words; a two-letter word is ("2 is + 3 = 5" reads 2+3). A word's own per-unit may be one
# letter ("60 km/h", "3 m/s"): after a word, "/h" is no variable. At most two follow an
# operand, which keeps most prose out, and only one that ends in a digit, "%" or ")": after a
# bare "-", "$" or "(" words are prose ("- Remaining apples - 3 = 7" is a bullet, not a
# computation).
_UNIT_WORD_PATTERN = r"(?:[ \t]+|/)[A-Za-z]{2,20}(?:/[A-Za-z])?(?![A-Za-z])"
_UNITS = rf"(?:(?<=[\d%)])(?:{_UNIT_WORD_PATTERN}){{1,2}})?"
# In a computation's text they are the only runs of two letters or more.
_UNIT_WORD = re.compile(_UNIT_WORD_PATTERN)
_NUMBER_START = re.compile(_NUMBER)
# A computation, in one of two forms:
# - a calculator annotation "<<48/2=24>>" (groups expr, result), with the expression written
#   before it ("48/2 = $") and the result stated after it ("24") when present;
# - a free-form "a op b = c" with at least one operator (group equals: from the "=" on; rhs),
#   its operands perhaps followed by unit words ("20 apples - 5 apples = 15"), perhaps
#   chained: "6 * 3/4 = 18/4 = 4.5", "3 + 4 = 7 + 2 = 9" (`_chain_steps`).
# Every computation starts with a character of [$(\d<-]; stating that first, outside the
# alternatives, lets the regex engine skip to candidates in C, which makes this several times
# faster than the same pattern written alternative by alternative. Model output can be
# degenerate ("1111...", "1+1+1+..." for thousands of characters): matches never start inside
# a number, and bounded repeats keep each attempt short, so the time stays linear.
# A chain goes on only up to another "=": looking for one first (a scan that stops at the
# next "=", or at the end of the text) spares most computations an attempt to read unit words
# and operators after their result.
# The whole computation is a group too, so that one `split` gives every part a sentence needs
# (see `_sentence_steps`).
_COMPUTATION_PATTERN = (
    r"(?P<computation>[$(\d<-](?<![\d.,]\d)"
    r"(?:(?:[\d \t.,$%()+*/x×÷^-]{0,200}=[ \t]*\$?[ \t]*<|(?<=<))"
    r"<(?P<expr>[^<>=]*)=(?P<result>[^<>]*)>>"
    rf"(?:[ \t]*\$?{_NUMBER})?"
    rf"|[\d,.%$()]{{0,40}}{_UNITS}(?:[ \t]*{_OPERATOR}[ \t]*{_OPERAND}{_UNITS}){{1,40}}"
    rf"(?P<equals>[ \t]*=[ \t]*\$?(?P<rhs>{_NUMBER})"
    rf"(?P<chain>(?:(?=[^=]*=){_UNITS}(?:[ \t]*{_OPERATOR}[ \t]*{_OPERAND}{_UNITS}){{0,40}}"
    rf"[ \t]*=[ \t]*\$?{_NUMBER}){{0,10}}))))"
)
_COMPUTATION = re.compile(_COMPUTATION_PATTERN)
# On ASCII text, where a Unicode digit cannot occur, \d (the pattern's only Unicode-aware class)
# can be [0-9]: the same matches, and the engine tests the characters it skips (most of a
# sentence) about twice as fast.
_ASCII_COMPUTATION = re.compile(_COMPUTATION_PATTERN, re.ASCII)
# `_COMPUTATION.split` lists the text before the first computation, then per computation its
# groups and the text after it (up to the next computation).
_SPLIT_STRIDE = _COMPUTATION.groups + 1
# "The total number of clips is 72." -- a stated result that ends the sentence.
# The subject ends before a whitespace run, not inside it: each run is tried once (a lazy
# subject stopping at every space of a long run made this quadratic).
_STATED_RESULT = re.compile(
    r"^(?P<subject>.*?)(?<!\s)\s+(?:is|are|was|were|equals|comes to|makes)"
    rf"\s+\$?(?P<result>{_NUMBER})\s*[.!]?$",
    re.IGNORECASE,
)
# Sentences that state the final answer of the whole problem ("So the answer is 72.", or any
# with a \boxed{...}) are not a step.
_FINAL_ANSWER_START = re.compile(
    r"(?:so|thus|therefore|hence)?[\s,]*(?:the\s+)?(?:final\s+)?answer\s*(?:is|:)", re.IGNORECASE
)
# GSM8K's "#### N" ends the solution; other lines starting with "#" are Markdown headings
# ("#### Step 1: Clips sold in May", "#### 1. Compute the total"), which instruct models write:
# text like any other line.
# One whitespace run where there is no sign or dollar: two adjacent ones split a long run
# every possible way.
_ANSWER_MARKER = re.compile(r"####[ \t]*(?:-\$?[ \t]*|\$[ \t]*)?\.?\d")
_HEADING_HASHES = re.compile(r"#+[ \t]*")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_CANONICAL_EXPRESSION = str.maketrans({"x": "*", "×": "*", "÷": "/", " ": None, "\t": None,
                                       "$": None, ",": None})
_CLOSING_PUNCTUATION = ".,;:!?"


def _canonical(expression: str) -> str:
    """A computation or number in one spelling: "0.2 x $50" -> "0.2*50", "1,200" -> "1200"."""
    # Most results are plain whole numbers, and the check is cheaper than the translation.
    return expression if expression.isdecimal() else expression.translate(_CANONICAL_EXPRESSION)


def _without_units(computation: str) -> str:
    """A free-form computation without its unit words: "$3 per hour x 4 hours" -> "$3 x 4"."""
    # Only text without letters is its own swapcase: most computations, and the check is
    # cheaper than the regex.
    return computation if computation.swapcase() == computation else _UNIT_WORD.sub("", computation)


def _join(left: str, right: str) -> str:
    """Two pieces of a sentence around a cut-out computation, joined with one space (none
    before punctuation)."""
    left, right = left.strip(), right.strip()
    if not left or right[:1] in _CLOSING_PUNCTUATION:  # "" is in any string: right may be empty
        # A heading's period and the one after a cut-out computation are one: "Total." not "..".
        if left[-1:] in _CLOSING_PUNCTUATION and not right.strip(_CLOSING_PUNCTUATION):
            return left
        return left + right
    return f"{left} {right}"


class RulesDecomposer:
    """Deterministic segmentation of GSM8K-style solutions, one step per computation.

    The text (only the inside of `<think>` when present) is split into lines and sentences.
    In each sentence the computations are found, in order:
    - a calculator annotation `<<48/2=24>>` gives the sub-problem (the expression, "48/2") and
      the answer (the result, "24"); the written expression before it ("48/2 =") and the
      stated result after it are part of the computation;
    - a free-form computation "a op b = c" (at least one operator) gives "a op b" and "c";
      up to two unit words after an operand ("20 apples - 5 apples = 15") are left out;
    - failing both, a sentence that ends in a stated result ("The total is 72.") gives its
      subject ("The total") as the sub-problem and the number as the answer.
    Sub-problems and answers are written canonically ("0.2 x $50" -> "0.2*50", "1,200" ->
    "1200"). A step's meta-reasoning is its sentence with the computations cut out ("Natalia
    sold clips in May."), so it does not state the answer; when a sentence holds several
    computations, each gets the text before it, and the last also the text after it. Sentences
    without a computation (restating givens, explaining) are prepended to the next step's
    meta-reasoning; any left after the last step are dropped. A "#### N" line ends the
    solution, and sentences stating the final answer ("So the answer is 72.") are skipped.
    A Markdown heading ("#### Step 1: Clips sold in May") is read without its hashes, as a
    sentence of its own.
    Text without any computation gives [].
    """

    def __call__(self, items: Sequence[DecomposeInput]) -> list[list[Step]]:
        return [self.decompose(item.reasoning) for item in items]

    def decompose(self, reasoning: str) -> list[Step]:
        """The steps of one reasoning text."""
        steps: list[Step] = []
        context = ""  # sentences without a computation, waiting for the next step
        text = think_text(reasoning)
        # Checks on the whole text spare most lines the sentence split and the answer regex.
        lowered = text.lower()
        states_answer = "answer" in lowered or "\\boxed" in lowered
        # LaTeX and bold around the arithmetic, as instruct models write it: "\\( 48 \\div 2 =
        # 24 \\)", "= **7**". A boxed result stays boxed, for the check below.
        text = plain_math(text, keep_boxed=True).replace("**", "")
        # "!" and "?" are rare: looking for the character alone, much quicker, spares most texts
        # the searches for "! " and "? ".
        several_sentences = (". " in text or ("!" in text and "! " in text)
                             or ("?" in text and "? " in text))
        any_boxed = "\\boxed" in text  # spares the other sentences the check for one
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("#"):
                if _ANSWER_MARKER.match(line) and not NUMBERED_HEADING.match(line):
                    break
                line = _heading_sentence(line)
            if not line:
                continue
            sentences = _SENTENCE_END.split(line) if several_sentences else (line,)
            for sentence in sentences:
                boxed = any_boxed and "\\boxed" in sentence
                if boxed:
                    # The boxed final answer: its computation ("48 + 24 = \\boxed{72}") is a
                    # step, a statement of it alone ("The total is \\boxed{72}.") is not.
                    sentence = plain_math(sentence)
                if states_answer and _FINAL_ANSWER_START.match(sentence):
                    continue
                found = _sentence_steps(sentence, context, stated_result=not boxed)
                if found:
                    steps += found
                    context = ""
                elif not boxed:
                    context = _join(context, sentence)
        return steps


def _heading_sentence(line: str) -> str:
    """A Markdown heading as a sentence: "## Step 2: Total" -> "Step 2: Total."."""
    heading = line[_HEADING_HASHES.match(line).end():]
    # A period keeps the heading a sentence apart from the text joined after it.
    return heading + "." if heading and heading[-1] not in _CLOSING_PUNCTUATION else heading


def _sentence_steps(sentence: str, context: str, stated_result: bool) -> list[Step]:
    """The steps of one sentence, `context` leading the first step's meta-reasoning; [] when
    the sentence has no computation (and, with `stated_result`, states no result)."""
    # One `split` cuts out every computation with its groups, in C: cheaper than a match
    # object per computation and slicing the sentence around each.
    if "=" not in sentence:
        pieces = [sentence]
    elif sentence.isascii():
        pieces = _ASCII_COMPUTATION.split(sentence)
    else:
        pieces = _COMPUTATION.split(sentence)
    if len(pieces) == 1:
        return _stated_result(sentence, context) if stated_result else []
    found = []
    for first in range(1, len(pieces), _SPLIT_STRIDE):  # a computation's first group
        computation, expr, result, equals, rhs, chain = pieces[first:first + _SPLIT_STRIDE - 1]
        before = pieces[first - 1]
        if context:
            before, context = _join(context, before), ""
        # The text between two computations goes to the second; the last also gets the rest.
        after = pieces[-1] if first + _SPLIT_STRIDE == len(pieces) else ""
        if expr is None:
            # A free-form computation ends with its "=" part; its unit words are cut out of
            # the sub-problem.
            expr = _without_units(computation[:-len(equals)])
            if chain:
                found += _chain_steps(expr, _without_units(equals), before, after)
                continue
            result = rhs
        meta = _join(before, after)
        found.append(Step(meta.strip(" ,;:"), _canonical(expr), _canonical(result)))
    return found


def _chain_steps(expression: str, equals: str, before: str, after: str) -> list[Step]:
    """The steps of a chained computation, `expression` followed by `equals` ("= 18/4 =
    4.5"), which share its sentence: the first gets the text `before` it as meta-reasoning, the
    last the text `after` it. A part that begins with the value so far and computes on ("3 + 4
    = 7 + 2 = 9") is a new step; one that writes the same value again ("6 * 3/4 = 18/4 =
    4.5") is not. The last part is the answer."""
    *middle, last = (part.strip().lstrip("$").strip() for part in equals.split("=")[1:])
    pairs = []
    for part in middle:
        leading = _NUMBER_START.match(part)
        value = arithmetic_value(expression)
        if (leading and value is not None and part != leading.group()
                and arithmetic_value(leading.group()) == value):
            pairs.append((expression, leading.group()))
            expression = part
    pairs.append((expression, last))
    steps = []
    for index, (sub_problem, answer) in enumerate(pairs):
        meta = _join(before if index == 0 else "", after if index == len(pairs) - 1 else "")
        steps.append(Step(meta.strip(" ,;:"), _canonical(sub_problem), _canonical(answer)))
    return steps


def _stated_result(sentence: str, context: str) -> list[Step]:
    """A one-step list for a sentence ending in a stated result ("The total is 72."), else []."""
    last_character = sentence.rstrip(" .!")[-1:]
    if not (last_character.isdigit() or last_character == "%"):  # cheap pre-check for the regex
        return []
    stated = _STATED_RESULT.match(sentence)
    if stated is None:
        return []
    subject = stated.group("subject").strip(" ,;:")
    return [Step(_join(context, subject), subject,
                 _canonical(stated.group("result")))]


class AutoDecomposer:
    """Per text: `tagged` when it is written in the step tag format, else `rules`."""

    def __init__(self) -> None:
        self._rules = RulesDecomposer()

    def __call__(self, items: Sequence[DecomposeInput]) -> list[list[Step]]:
        return [
            parse_steps(item.reasoning) if looks_tagged(item.reasoning)
            else self._rules.decompose(item.reasoning)
            for item in items
        ]


DECOMPOSER_NAMES = ("auto", "tagged", "rules", "gsrm")


def make_decomposer(name: str, **options: Any) -> Decomposer:
    """The decomposer called `name` ("auto", "tagged", "rules" or "gsrm"), built with `options`.

    "gsrm" takes `model`, `tokenizer` and `adapter` (see `rlkd_lite.structure.llm`) and imports
    its model code only when asked for.
    """
    if name == "auto":
        return AutoDecomposer(**options)
    if name == "tagged":
        return TaggedDecomposer(**options)
    if name == "rules":
        return RulesDecomposer(**options)
    if name == "gsrm":
        from rlkd_lite.structure.llm import GSRMDecomposer

        return GSRMDecomposer(**options)
    raise InputError(f"unknown decomposer {name!r}; choose one of {', '.join(DECOMPOSER_NAMES)}")
