"""Judges: decide, for a batch of (teacher, student) text pairs, which pairs say the same thing.

A judge is any callable taking a sequence of `JudgePair` and returning one bool per pair; the
structure reward makes one call per batch (`rlkd_lite.structure.reward`), which lets the `llm` judge
score all pairs in a few batched forward passes. The judges here are deterministic and need
no model: `exact` (normalised string equality) and `lexical` (token overlap, numbers by
value). Both say so with `identical_texts_match = True`: identical texts always match, and the
structure reward does not ask such a judge about them (most pairs: students copy steps).
"""
from __future__ import annotations

import ast
import functools
import math
import operator
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Protocol

from rlkd_lite.data.answers import TYPESET_MINUS
from rlkd_lite.errors import InputError

PairKind = Literal["problem", "answer"]


class JudgePair(NamedTuple):
    """One question for a judge: does the student's text say the same as the teacher's?

    `kind` is "problem" for meta-reasoning and sub-problem texts (same sub-problem?) and
    "answer" for answers (same answer?). A named tuple, not a dataclass: pairs are hashed and
    compared hundreds of thousands of times a `score` run (each distinct pair is judged once),
    and a tuple does that in C.
    """

    kind: PairKind
    teacher: str
    student: str


class Judge(Protocol):
    """Anything that judges a batch of pairs at once.

    A judge may also set `identical_texts_match = True` (as `ExactJudge` and `LexicalJudge`
    do) when it says yes to every pair of identical texts: the structure reward then does not
    ask it about those pairs. Without the attribute it is asked about every distinct pair."""

    def __call__(self, pairs: Sequence[JudgePair]) -> list[bool]: ...


_WHITESPACE = re.compile(r"\s+")
_SURROUNDING = string.punctuation + string.whitespace
# Leading punctuation up to a number's own sign or decimal point: "-5" and ".5" are not "5".
_LEADING_PUNCTUATION = re.compile(rf"(?:(?!-\$?\.?\d|\.\d)[{re.escape(_SURROUNDING)}])+")


@functools.lru_cache(maxsize=1 << 16)
def _normalised(text: str) -> str:
    text = _WHITESPACE.sub(" ", text).rstrip(_SURROUNDING)
    leading = _LEADING_PUNCTUATION.match(text)
    return (text[leading.end():] if leading else text).lower()


class ExactJudge:
    """Equal after lower-casing, collapsing whitespace and stripping surrounding punctuation.

    A sign or decimal point that starts a number is not punctuation: "-5", ".5" and "5" differ.
    """

    identical_texts_match = True

    def __call__(self, pairs: Sequence[JudgePair]) -> list[bool]:
        return [_normalised(p.teacher) == _normalised(p.student) for p in pairs]


# Tokens: numbers (with sign, thousands separators and decimals), words, and arithmetic
# operators. Operators are tokens so that "48/2" and "48*2" are different sub-problems. A
# minus glued to a word or number ("5-3") is an operator; one after a space ("is -5") is read
# as a sign here, and as subtraction again in `_tokens` when a number comes before it.
_UNSIGNED_NUMBER = r"[0-9](?:,?[0-9])*(?:\.[0-9]+)?|\.[0-9]+"  # a comma only between digits
_TOKEN = re.compile(rf"[^\W\d_]+|{_UNSIGNED_NUMBER}|(?<![\w.)])-\$?(?:{_UNSIGNED_NUMBER})"
                    r"|[-+*/×÷^=%]")
_OPERATOR_SPELLINGS = {"×": "*", "÷": "/", "x": "*"}
# Words that carry no content in a sub-problem or meta-reasoning sentence.
_STOP_WORDS = frozenset(
    "a an the of to in on at for by with from and or but so then than as is are was were be been "
    "it its this that these those there their they them he she his her we our you your i my "
    "how many much what which who whom do does did has have had will would can could should "
    "need needs find first next now let us".split()
)


def _number_token(token: str) -> str:
    """The value of a number token as canonical text: "1,200" -> "1200", "24.0" -> "24",
    "-$5" -> "-5", "-0" -> "0"."""
    if token[0] == "-":
        magnitude = _number_token(token.lstrip("-$"))
        return magnitude if magnitude == "0" else "-" + magnitude
    digits = token.replace(",", "")
    if "." not in digits:
        # Not int(): model output can hold numbers longer than int() accepts (4300 digits).
        return digits.lstrip("0") or "0"
    return _value_token(float(digits))


def _value_token(value: float) -> str:
    """A number's value as canonical text: 24.0 -> "24", 0.75 -> "0.75"."""
    # A huge value is inf, which is not an integer: no int() of it.
    return str(int(value)) if value.is_integer() else repr(value)


def _quotient_token(numerator: str, denominator: str) -> str | None:
    """The value of the fraction numerator/denominator as a number token; None when it has
    none (a zero denominator, numbers too long for a float)."""
    try:
        value = float(numerator) / float(denominator)
    except ZeroDivisionError:
        return None
    return _value_token(value) if math.isfinite(value) else None


@dataclass(frozen=True, slots=True)
class _Tokens:
    words: frozenset[str]
    """Content tokens: words without stop words, numbers by value, operators."""
    numbers: frozenset[str]
    """The numbers alone, by value; a fraction "3/4" is one number, its value 0.75."""
    expression: tuple[str, ...] | None
    """For a bare arithmetic expression ("48 / 2"), all its tokens, sorted; else None."""


_EXPRESSION_CHARACTERS = re.compile(r"[\d\s.,$%()+*/x×÷^=-]+")
_DIGITS = frozenset("0123456789")  # the last characters of number tokens, and only of them
_ARITHMETIC_OPERATORS = frozenset("+-*/^")


@functools.lru_cache(maxsize=1 << 17)
def _tokens(text: str) -> _Tokens:
    text = text.replace(TYPESET_MINUS, "-")
    if text.isascii() and text.isdigit():  # the most common answer, a plain whole number
        number = _number_token(text)
        return _Tokens(frozenset((number,)), frozenset((number,)), (number,))
    words, numbers, every = set(), [], []
    previous = ""  # the token before, stop words included
    divides_number = False  # whether the last "/" came right after a number
    for token in _TOKEN.findall(text.lower()):
        if token[-1] in _DIGITS:
            if token[0] == "-" and previous[-1:] in _DIGITS:  # "12 -5", "12 -$5": subtraction
                words.add("-")
                every.append("-")
                token = token[1:].lstrip("$")
            token = _number_token(token)
            quotient = (_quotient_token(numbers[-1], token)
                        if previous == "/" and divides_number else None)
            if quotient is None:
                numbers.append(token)
            else:
                numbers[-1] = quotient
        elif token in _STOP_WORDS:
            previous = token
            continue
        else:
            token = _OPERATOR_SPELLINGS.get(token, token)
            if token == "/":
                divides_number = previous[-1:] in _DIGITS
        previous = token
        words.add(token)
        every.append(token)
    bare = numbers and _EXPRESSION_CHARACTERS.fullmatch(text)
    return _Tokens(frozenset(words), frozenset(numbers), tuple(sorted(every)) if bare else None)


def _arithmetic(expression: tuple[str, ...]) -> bool:
    """Whether an expression's tokens hold an operator to evaluate ("48/2", not "24")."""
    return not _ARITHMETIC_OPERATORS.isdisjoint(expression)


_MAX_EVALUATED_CHARACTERS = 200  # sub-problems and answers are short; junk is not evaluated
_EVALUATION_SPELLING = str.maketrans({"x": "*", "×": "*", "÷": "/", "^": "**", "$": None,
                                      "%": None, TYPESET_MINUS: "-"})
_THOUSANDS_COMMA = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_LEADING_ZEROS = re.compile(r"(?<![\d.])0+(?=\d)")  # Python refuses "007"
_BINARY_OPERATIONS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
                      ast.Div: operator.truediv, ast.Pow: operator.pow}
_UNARY_OPERATIONS = {ast.USub: operator.neg, ast.UAdd: operator.pos}


@functools.lru_cache(maxsize=1 << 14)
def arithmetic_value(expression: str) -> float | None:
    """The value of a bare arithmetic expression ("0.2 x $50" -> 10.0), or None when it has
    none: not one expression over numbers, + - * / ^ and parentheses ("48/2=24"), a division
    by zero, an overflow, a complex power, or longer than `_MAX_EVALUATED_CHARACTERS`.

    Parsed with `ast` and evaluated node by node in floats: no eval(), and float arithmetic
    keeps even "9^9^9^9" quick (it overflows). A percent sign is dropped, as in
    `rlkd_lite.data.answers`, so "25%" is 25.
    """
    if len(expression) > _MAX_EVALUATED_CHARACTERS:
        return None
    spelled = _balanced(expression.translate(_EVALUATION_SPELLING).strip())
    python = _LEADING_ZEROS.sub("", _THOUSANDS_COMMA.sub("", spelled))
    try:
        value = _evaluate(ast.parse(python.strip(), mode="eval").body)
    except (SyntaxError, ValueError, ArithmeticError, RecursionError, TypeError):
        return None
    return value if isinstance(value, float) and math.isfinite(value) else None


def _balanced(expression: str) -> str:
    """`expression` without the parentheses left open or closed at its ends: the rules
    decomposer cuts "(48/2 = 24)" to "(48/2", which is the computation 48/2."""
    while expression.startswith("(") and expression.count("(") > expression.count(")"):
        expression = expression[1:].lstrip()
    while expression.endswith(")") and expression.count(")") > expression.count("("):
        expression = expression[:-1].rstrip()
    return expression


def _evaluate(node: ast.expr) -> float:
    """The float value of an arithmetic syntax tree; TypeError for anything else in it."""
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY_OPERATIONS:
        return _BINARY_OPERATIONS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY_OPERATIONS:
        return _UNARY_OPERATIONS[type(node.op)](_evaluate(node.operand))
    raise TypeError(f"not arithmetic: {type(node).__name__}")


def _same_value(first: float | None, second: float | None) -> bool:
    """Equal values up to float rounding; None (no value) equals only None."""
    if first is None or second is None:
        return first is second
    return math.isclose(first, second, rel_tol=1e-9, abs_tol=1e-12)


class LexicalJudge:
    """Token overlap with a threshold; numbers compared by value.

    Two texts match when the Dice coefficient (F1 of the token sets) of their content tokens is
    at least `threshold`. Content tokens are lower-cased words minus stop words, numbers by
    value with their sign ("24", "24.0", "$24" and "1,200"/"1200" are the same token, "-5" is
    not "5") and arithmetic operators ("x" and "×" read as "*", "÷" as "/").

    For "answer" pairs: when either side is a bare arithmetic expression and both have a value
    (see `arithmetic_value`), the values are compared ("2+3*4" matches "14", not "2*3+4").
    Otherwise, when both sides contain numbers, only the numbers are compared: the sets of
    values must be equal, with a fraction read as its value, so "$24" matches "24 dollars" and
    "24.0", "3/4 cup" matches "0.75 cup" but not "4/3 cup", and "24" does not match "25
    dollars".

    Two bare arithmetic expressions (the sub-problems of the rules decomposer) match only with
    the same numbers and operators, in any order and spacing, and the same value: "48 / 2"
    matches "48/2" but not "48*2", which token overlap would pass (0.67) because the texts are
    so short, nor "2/48" (same tokens, another value), nor "6*4" (same value, another
    computation). Where either side has no value ("48/2=24", "1/0") the tokens decide
    alone. Identical texts always match; a text with no content tokens
    matches only such a text. No unit conversion.
    """

    DEFAULT_THRESHOLD = 0.5
    """Half the content tokens shared (as F1): paraphrases that name the same quantities and
    numbers pass ("Find the clips sold in May" vs "Natalia sold half as many clips in May" is
    0.75), while steps about another quantity share too little ("In the first part the train
    covers miles" vs "The average speed is miles per hour" is 0.22)."""

    identical_texts_match = True

    def __init__(self, threshold: float = DEFAULT_THRESHOLD):
        if not 0.0 <= threshold <= 1.0:
            raise InputError(f"lexical threshold must be in [0, 1], got {threshold}")
        self.threshold = threshold

    def similarity(self, teacher: str, student: str) -> float:
        """Dice coefficient of the two texts' content tokens, in [0, 1]."""
        return _dice(_tokens(teacher).words, _tokens(student).words)

    def same(self, pair: JudgePair) -> bool:
        """The verdict for one pair."""
        # Identical texts have equal tokens, so they would match by the rules below too.
        if pair.teacher == pair.student:
            return True
        teacher, student = _tokens(pair.teacher), _tokens(pair.student)
        both_expressions = teacher.expression is not None and student.expression is not None
        if pair.kind == "answer":
            if both_expressions and (_arithmetic(teacher.expression)
                                     or _arithmetic(student.expression)):
                teacher_value = arithmetic_value(pair.teacher)
                student_value = arithmetic_value(pair.student)
                if teacher_value is not None and student_value is not None:
                    return _same_value(teacher_value, student_value)
            if teacher.numbers and student.numbers:
                return teacher.numbers == student.numbers
        if both_expressions:
            if teacher.expression != student.expression:
                return False
            # Equal tokens: the values tell "48/2" from "2/48" where both sides have one; a
            # side without one ("48/2=24", "1/0") leaves it to the tokens.
            # Evaluated only here, which keeps it off the common, cheap verdicts.
            teacher_value = arithmetic_value(pair.teacher)
            student_value = arithmetic_value(pair.student)
            return (teacher_value is None or student_value is None
                    or _same_value(teacher_value, student_value))
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
