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

from rlkd_lite.errors import InputError
from rlkd_lite.structure.steps import Step, looks_tagged, parse_steps, think_text


@dataclass(frozen=True)
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
# A calculator-annotated computation as GSM8K writes it, "48/2 = <<48/2=24>>24": the written
# expression before it (optional), the annotation, and the stated result after it (optional).
# A free-form computation "48 / 2 = 24" (at least one operator on the left).
_COMPUTATION = re.compile(
    rf"(?:\$?\(?\d[\d\s.,$%()+*/x×÷^-]*=\s*\$?\s*)?<<(?P<expr>[^<>=]*)=(?P<result>[^<>]*)>>"
    rf"(?:\s*\$?{_NUMBER})?"
    rf"|(?P<lhs>\$?\(?{_NUMBER}\)?(?:\s*{_OPERATOR}\s*\$?\(?{_NUMBER}\)?)+)\s*=\s*\$?(?P<rhs>{_NUMBER})"
)
# "The total number of clips is 72." -- a stated result that ends the sentence.
_STATED_RESULT = re.compile(
    rf"^(?P<subject>.*?)\s+(?:is|are|was|were|equals|comes to|makes)\s+\$?(?P<result>{_NUMBER})"
    r"\s*[.!]?$",
    re.IGNORECASE,
)
# Sentences that state the final answer of the whole problem are not a step.
_FINAL_ANSWER = re.compile(
    r"^(?:so|thus|therefore|hence)?[\s,]*(?:the\s+)?(?:final\s+)?answer\s*(?:is|:)|\\boxed",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_EXPRESSION_JUNK = re.compile(r"[\s$,]")
_SPACE_BEFORE_PUNCTUATION = re.compile(r"\s+([.,;:!?])")
_WHITESPACE = re.compile(r"\s+")
_EXPRESSION_OPERATORS = str.maketrans({"x": "*", "×": "*", "÷": "/"})


def _expression(text: str) -> str:
    """A computation in one canonical spelling: "0.2 x $50" -> "0.2*50", "1,200 ÷ 3" -> "1200/3"."""
    return _EXPRESSION_JUNK.sub("", text).translate(_EXPRESSION_OPERATORS)


def _clean(text: str) -> str:
    """Sentence text with computations cut out, tidied: single spaces, no stray punctuation."""
    text = _SPACE_BEFORE_PUNCTUATION.sub(r"\1", _WHITESPACE.sub(" ", text))
    return text.strip(" ,;:")


class RulesDecomposer:
    """Deterministic segmentation of GSM8K-style solutions, one step per computation.

    The text (only the inside of `<think>` when present) is split into lines and sentences.
    In each sentence the computations are found, in order:
    - a calculator annotation `<<48/2=24>>` gives the sub-problem (the expression, "48/2") and
      the answer (the result, "24"); the written expression before it ("48/2 =") and the
      stated result after it are part of the computation;
    - a free-form computation "a op b = c" (at least one operator) gives "a op b" and "c";
    - failing both, a sentence that ends in a stated result ("The total is 72.") gives its
      subject ("The total") as the sub-problem and the number as the answer.
    A step's meta-reasoning is its sentence with the computations cut out ("Natalia sold clips
    in May."), so it does not state the answer; when a sentence holds several computations,
    each gets the text before it, and the last also the text after it. Sentences without a
    computation (restating givens, explaining) are prepended to the next step's meta-reasoning;
    any left after the last step are dropped. A "#### N" line ends the solution, and sentences
    stating the final answer ("So the answer is 72.") are skipped. Text without any
    computation gives [].
    """

    def __call__(self, items: Sequence[DecomposeInput]) -> list[list[Step]]:
        return [self.decompose(item.reasoning) for item in items]

    def decompose(self, reasoning: str) -> list[Step]:
        """The steps of one reasoning text."""
        steps: list[Step] = []
        context: list[str] = []
        for line in think_text(reasoning).splitlines():
            line = line.strip()
            if line.startswith("####"):
                break
            if not line:
                continue
            for sentence in _SENTENCE_END.split(line):
                if _FINAL_ANSWER.search(sentence):
                    continue
                found = _sentence_steps(sentence)
                if not found:
                    context.append(sentence)
                    continue
                if context:
                    first = found[0]
                    found[0] = Step(_clean(" ".join([*context, first.meta])), first.query, first.answer)
                    context = []
                steps.extend(found)
        return steps


def _sentence_steps(sentence: str) -> list[Step]:
    """The steps of the computations in one sentence; [] when it has none."""
    found: list[Step] = []
    previous_end = 0
    for match in _COMPUTATION.finditer(sentence):
        if match.group("expr") is not None:
            query, answer = match.group("expr"), match.group("result")
        else:
            query, answer = match.group("lhs"), match.group("rhs")
        found.append(Step(_clean(sentence[previous_end:match.start()]), _expression(query),
                          _expression(answer)))
        previous_end = match.end()
    if found:
        last = found[-1]
        found[-1] = Step(_clean(f"{last.meta} {sentence[previous_end:]}"), last.query, last.answer)
        return found
    stated = _STATED_RESULT.match(sentence)
    if stated is None:
        return []
    subject = _clean(stated.group("subject"))
    return [Step(subject, subject, _expression(stated.group("result")))]


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
