"""The reward functions GRPO trains on, in TRL's reward-function shape.

Each is called once per generation batch with the prompts, the completions and every dataset
column (one value per completion) and returns one float per completion. The trainer weights and
sums them (`reward_weights`) before GRPO's group normalisation; TRL logs each one separately
under `rewards/<name>/mean`.

- accuracy:  the final answer, extracted from the completion, equals the gold answer by value.
- format:    the completion has exactly the recipe's answer format (ANSWER_FORMATS).
- tag_count: partial credit for each piece of that format, so that a policy that is not there
             yet still gets a gradient (the authors' "tag count" reward).
- structure: RLKD's reward: the student's reasoning, decomposed into steps, aligned with the
             teacher's steps (rlkd_lite.structure.reward). Never raises: a failure scores 0.
"""
from __future__ import annotations

import inspect
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

from rlkd_lite.data.answers import (answer_markers, answers_match, extract_final_answer,
                                    last_answer_marker)
from rlkd_lite.structure.decomposers import DecomposeInput
from rlkd_lite.structure.reward import StructureScore, structure_scores
from rlkd_lite.structure.steps import Step, steps_from_json, think_text

log = logging.getLogger(__name__)

# "[\d,]*\.?\d+" spelled so that the two digit runs cannot share digits (quadratic on a long
# run of digits not followed by the end).
_NUMBER = r"-?\$?[\d,]*(?:\.\d+|\d)"
ANSWER_FORMATS = {
    # R1-style, as in the paper: reasoning inside think tags, then the answer.
    "think": re.compile(rf"^\s*<think>.+?</think>\s*####\s*{_NUMBER}\s*$", re.S),
    # GSM8K-style: reasoning lines, then the answer line (what small instruct models write).
    # The greedy ".+" backs up to the last line break only: linear on a run of blank lines.
    "plain": re.compile(rf"^(?!.*</?think>).+\n[^\S\n]*####\s*{_NUMBER}\s*$", re.S),
}
"""Answer formats a recipe can ask for (`answer_format`): the format reward's exact patterns."""


def render_target(reasoning: str, answer: str, answer_format: str) -> str:
    """A completion in `answer_format`: the SFT target. A `#### N` answer line in the
    reasoning (GSM8K style; `last_answer_marker`) is dropped with what follows it, and the
    answer written once, at the end."""
    marker = last_answer_marker(reasoning)
    body = (reasoning if marker is None else reasoning[:marker]).strip()
    if answer_format == "think":
        return f"<think>\n{body}\n</think>\n#### {answer}"
    return f"{body}\n#### {answer}"


def completion_text(completion: Any) -> str:
    """TRL passes conversational completions as [{"role": "assistant", "content": ...}]."""
    if isinstance(completion, str):
        return completion
    return "".join(m.get("content", "") for m in completion if isinstance(m, dict))


def prompt_question(prompt: Any) -> str:
    """The user's question from a conversational prompt (the last user message)."""
    if isinstance(prompt, str):
        return prompt
    users = [m["content"] for m in prompt if m.get("role") == "user"]
    return users[-1] if users else ""


@dataclass
class LastBatch:
    """The latest batch each reward saw, for the run's sample log (prompt, completion, scores)."""

    questions: list[str] = field(default_factory=list)
    completions: list[str] = field(default_factory=list)
    rewards: dict[str, list[float]] = field(default_factory=dict)
    student_steps: list[list[Step]] = field(default_factory=list)
    teacher_steps: list[list[Step]] = field(default_factory=list)
    structure: list[StructureScore] = field(default_factory=list)


class AccuracyReward:
    __name__ = "accuracy"

    def __init__(self, last: LastBatch):
        self.last = last

    def __call__(self, prompts: list, completions: list, answer: list[str],
                 **_: Any) -> list[float]:
        texts = [completion_text(c) for c in completions]
        values = [float(answers_match(extract_final_answer(t), a)) for t, a in zip(texts, answer)]
        self.last.questions = [prompt_question(p) for p in prompts]
        self.last.completions = texts
        self.last.rewards = {"accuracy": values}
        return values


class FormatReward:
    __name__ = "format"

    def __init__(self, last: LastBatch, answer_format: str):
        self.last, self.pattern = last, ANSWER_FORMATS[answer_format]

    def __call__(self, completions: list, **_: Any) -> list[float]:
        values = [float(bool(self.pattern.match(completion_text(c)))) for c in completions]
        self.last.rewards["format"] = values
        return values


class TagCountReward:
    __name__ = "tag_count"

    def __init__(self, last: LastBatch, answer_format: str):
        self.last, self.answer_format = last, answer_format

    def score(self, text: str) -> float:
        """The share of the format's pieces that are right: each tag once, one answer line,
        nothing but a number after it. `####` headings ("#### Step 1: ...") are no answer line."""
        markers = answer_markers(text)
        tail = text[markers[-1] + len("####"):] if markers else ""
        pieces = [len(markers) == 1, bool(re.fullmatch(rf"\s*{_NUMBER}\s*", tail))]
        if self.answer_format == "think":
            pieces += [text.count("<think>") == 1, text.count("</think>") == 1]
        return sum(pieces) / len(pieces)

    def __call__(self, completions: list, **_: Any) -> list[float]:
        values = [self.score(completion_text(c)) for c in completions]
        self.last.rewards["tag_count"] = values
        return values


class StructureReward:
    """Decompose every distinct completion (batched), judge all distinct step pairs (one batched
    call), score."""

    __name__ = "structure"

    def __init__(self, decomposer: Any, judge: Any, *, normalize: bool, last: LastBatch):
        self.decomposer, self.judge, self.normalize, self.last = decomposer, judge, normalize, last
        self.seconds = {"decompose": 0.0, "judge": 0.0}
        # Steps past the teacher's count never score, so a generating decomposer (gsrm) may stop
        # there: fewer tokens per rollout.
        self.stop_at_teacher_steps = "max_steps" in inspect.signature(decomposer).parameters

    def __call__(self, prompts: list, completions: list, teacher_steps: list[str],
                 log_metric: Any = None, **_: Any) -> list[float]:
        texts = [completion_text(c) for c in completions]
        try:
            teacher = [steps_from_json(s) for s in teacher_steps]
            reasoning = [think_text(t).strip() for t in texts]
            # A completion scores 0 if its teacher has no steps, and gets no steps (so scores 0)
            # if it has no reasoning: a decomposer must not make steps up from the question.
            todo = [i for i, t in enumerate(teacher) if t and reasoning[i]]
            # Rollouts of a group often repeat each other: decompose each distinct one once.
            keys = [(DecomposeInput(prompt_question(prompts[i]), reasoning[i]),
                     len(teacher[i]) if self.stop_at_teacher_steps else None) for i in todo]
            distinct = list(dict.fromkeys(keys))
            limits = ({"max_steps": [limit for _, limit in distinct]}
                      if self.stop_at_teacher_steps else {})
            start = time.perf_counter()
            steps_of = dict(zip(distinct, self.decomposer([item for item, _ in distinct], **limits)
                                if distinct else []))
            # A generating decomposer's work (tokens, batched decode steps), zero if not called.
            work = {name: count if distinct else 0
                    for name, count in getattr(self.decomposer, "last_counts", {}).items()}
            student: list[list[Step]] = [[] for _ in texts]
            for i, key in zip(todo, keys):
                student[i] = steps_of[key]
            decomposed = time.perf_counter()
            scores = structure_scores(teacher, student, self.judge, normalize=self.normalize)
            judged = time.perf_counter()
        except Exception:  # a broken decomposer or judge must not kill a long run
            log.exception("structure reward failed for this batch; scoring it 0")
            zeros = [0.0] * len(completions)
            # Samples of this batch must not show the previous batch's steps and scores.
            self.last.rewards["structure"] = zeros
            self.last.student_steps, self.last.teacher_steps, self.last.structure = [], [], []
            return zeros
        self.seconds = {"decompose": decomposed - start, "judge": judged - decomposed}
        if log_metric is not None:
            log_metric("structure/decompose_s", self.seconds["decompose"])
            log_metric("structure/judge_s", self.seconds["judge"])
            log_metric("structure/student_steps", sum(map(len, student)) / max(len(student), 1))
            log_metric("structure/decomposed", len(distinct))
            for name, count in work.items():
                log_metric(f"structure/gsrm_{name}", count)
        values = [s.reward for s in scores]
        self.last.rewards["structure"] = values
        self.last.student_steps, self.last.teacher_steps = student, teacher
        self.last.structure = scores
        return values


def build_reward_functions(weights: dict[str, float], *, last: LastBatch, answer_format: str,
                           decomposer: Any = None, judge: Any = None, normalize: bool = False
                           ) -> tuple[list[Any], list[float]]:
    """The reward callables and their weights, in matching order; accuracy first because it
    starts a new LastBatch record for the batch."""
    makers = {
        "accuracy": lambda: AccuracyReward(last),
        "format": lambda: FormatReward(last, answer_format),
        "tag_count": lambda: TagCountReward(last, answer_format),
        "structure": lambda: StructureReward(decomposer, judge, normalize=normalize, last=last),
    }
    if "accuracy" not in weights:
        weights = {"accuracy": 0.0, **weights}  # logged (weight 0) so samples and metrics have it
    names = sorted(weights, key=lambda n: n != "accuracy")
    return [makers[n]() for n in names], [float(weights[n]) for n in names]
