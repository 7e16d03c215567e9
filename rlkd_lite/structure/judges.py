"""Judges: decide, for a batch of (teacher, student) text pairs, which pairs say the same thing.

A judge is any callable taking a sequence of `JudgePair` and returning one bool per pair; the
structure reward makes one call per batch (DESIGN.md section 2), which lets the `llm` judge
score all pairs in one forward pass. The judges here are deterministic and need no model:
`exact` (normalised string equality) and `lexical` (token overlap, numbers by value).
"""
from __future__ import annotations

import functools
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from rlkd_lite.errors import InputError

PairKind = Literal["problem", "answer"]


@dataclass(frozen=True, slots=True)
class JudgePair:
    """One question for a judge: does the student's text say the same as the teacher's?

    `kind` is "problem" for meta-reasoning and sub-problem texts (same sub-problem?) and
    "answer" for answers (same answer?).
    """

    kind: PairKind
    teacher: str
    student: str


class Judge(Protocol):
    """Anything that judges a batch of pairs at once."""

    def __call__(self, pairs: Sequence[JudgePair]) -> list[bool]: ...


_WHITESPACE = re.compile(r"\s+")
_SURROUNDING = string.punctuation + string.whitespace


@functools.lru_cache(maxsize=1 << 16)
def _normalised(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip(_SURROUNDING).lower()


class ExactJudge:
    """Equal after lower-casing, collapsing whitespace and stripping surrounding punctuation."""

    def __call__(self, pairs: Sequence[JudgePair]) -> list[bool]:
        return [_normalised(p.teacher) == _normalised(p.student) for p in pairs]


# Tokens: numbers (with thousands separators and decimals), words, and arithmetic operators.
# Operators are tokens so that "48/2" and "48*2" are different sub-problems.
_TOKEN = re.compile(r"[0-9][0-9,]*(?:\.[0-9]+)?|\.[0-9]+|[^\W\d_]+|[-+*/×÷^=%]")
_OPERATOR_SPELLINGS = {"×": "*", "÷": "/", "x": "*"}
# Words that carry no content in a sub-problem or meta-reasoning sentence.
_STOP_WORDS = frozenset(
    "a an the of to in on at for by with from and or but so then than as is are was were be been "
    "it its this that these those there their they them he she his her we our you your i my "
    "how many much what which who whom do does did has have had will would can could should "
    "need needs find first next now let us".split()
)


def _number_token(token: str) -> str:
    """The value of a number token as canonical text: "1,200" -> "1200", "24.0" -> "24"."""
    digits = token.replace(",", "")
    if "." not in digits:
        # Not int(): model output can hold numbers longer than int() accepts (4300 digits).
        return digits.lstrip("0") or "0"
    value = float(digits)  # a huge one is inf, which is not an integer: no int() below
    return str(int(value)) if value.is_integer() else repr(value)


@dataclass(frozen=True, slots=True)
class _Tokens:
    words: frozenset[str]
    """Content tokens: words without stop words, numbers by value, operators."""
    numbers: frozenset[str]
    """The numbers alone, by value."""
    expression: tuple[str, ...] | None
    """For a bare arithmetic expression ("48 / 2"), all its tokens, sorted; else None."""


_EXPRESSION_CHARACTERS = re.compile(r"[\d\s.,$%()+*/x×÷^=-]+")
_NUMBER_START = frozenset("0123456789.")  # the first characters of number tokens


@functools.lru_cache(maxsize=1 << 17)
def _tokens(text: str) -> _Tokens:
    if text.isascii() and text.isdigit():  # the most common answer, a plain whole number
        number = _number_token(text)
        return _Tokens(frozenset((number,)), frozenset((number,)), (number,))
    words, numbers, every = set(), set(), []
    for token in _TOKEN.findall(text.lower()):
        if token[0] in _NUMBER_START:
            token = _number_token(token)
            numbers.add(token)
        elif token in _STOP_WORDS:
            continue
        else:
            token = _OPERATOR_SPELLINGS.get(token, token)
        words.add(token)
        every.append(token)
    bare = numbers and _EXPRESSION_CHARACTERS.fullmatch(text)
    return _Tokens(frozenset(words), frozenset(numbers), tuple(sorted(every)) if bare else None)


class LexicalJudge:
    """Token overlap with a threshold; numbers compared by value.

    Two texts match when the Dice coefficient (F1 of the token sets) of their content tokens is
    at least `threshold`. Content tokens are lower-cased words minus stop words, numbers by
    value ("24", "24.0", "$24" and "1,200"/"1200" are the same token) and arithmetic operators
    ("x" and "×" read as "*", "÷" as "/"). For "answer" pairs where both sides contain numbers
    only the numbers are compared: the sets of values must be equal, so "$24" matches "24
    dollars" and "24.0", but "24" does not match "25 dollars". Two bare arithmetic expressions
    (the sub-problems of the rules decomposer) match only with the same numbers and operators,
    in any order and spacing: "48 / 2" matches "48/2" but not "48*2", which token overlap
    would pass (0.67) because the texts are so short. Identical texts (after
    normalisation) always match; a text with no content tokens matches only such a text.
    No unit conversion and no fraction evaluation ("1/2" is the tokens 1, /, 2).
    """

    DEFAULT_THRESHOLD = 0.5
    """Half the content tokens shared (as F1): paraphrases that name the same quantities and
    numbers pass ("Find the clips sold in May" vs "Natalia sold half as many clips in May" is
    0.75), while steps about another quantity share too little ("In the first part the train
    covers miles" vs "The average speed is miles per hour" is 0.22)."""

    def __init__(self, threshold: float = DEFAULT_THRESHOLD):
        if not 0.0 <= threshold <= 1.0:
            raise InputError(f"lexical threshold must be in [0, 1], got {threshold}")
        self.threshold = threshold

    def similarity(self, teacher: str, student: str) -> float:
        """Dice coefficient of the two texts' content tokens, in [0, 1]."""
        return _dice(_tokens(teacher).words, _tokens(student).words)

    def same(self, pair: JudgePair) -> bool:
        """The verdict for one pair."""
        # Texts equal after normalisation have equal tokens, so they match by the rules below.
        if pair.teacher == pair.student:
            return True
        teacher, student = _tokens(pair.teacher), _tokens(pair.student)
        if pair.kind == "answer" and teacher.numbers and student.numbers:
            return teacher.numbers == student.numbers
        if teacher.expression is not None and student.expression is not None:
            return teacher.expression == student.expression
        return _dice(teacher.words, student.words) >= self.threshold

    def __call__(self, pairs: Sequence[JudgePair]) -> list[bool]:
        # Identical texts are common (a student copying a step) and need no tokens.
        return [p.teacher == p.student or self.same(p) for p in pairs]


def _dice(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return float(a == b)
    return 2 * len(a & b) / (len(a) + len(b))


JUDGE_NAMES = ("exact", "lexical", "llm")


def make_judge(name: str, **options: Any) -> Judge:
    """The judge called `name` ("exact", "lexical" or "llm"), built with `options`.

    "lexical" takes `threshold`; "llm" takes `model`, `tokenizer`, `adapter` and `batch_size`
    and imports its model code only when asked for.
    """
    if name == "exact":
        return ExactJudge(**options)
    if name == "lexical":
        return LexicalJudge(**options)
    if name == "llm":
        from rlkd_lite.structure.llm import LLMJudge

        return LLMJudge(**options)
    raise InputError(f"unknown judge {name!r}; choose one of {', '.join(JUDGE_NAMES)}")
