"""Reasoning structure: the step format, decomposers, judges and the structure reward.

Everything here is pure Python; the model-backed parts (`GSRMDecomposer`, `LLMJudge`) are
imported from `rlkd_lite.structure.llm` only when first accessed.
"""
from __future__ import annotations

from typing import Any

from rlkd_lite.structure.decomposers import (
    AutoDecomposer,
    DecomposeInput,
    Decomposer,
    RulesDecomposer,
    TaggedDecomposer,
    make_decomposer,
)
from rlkd_lite.structure.judges import ExactJudge, Judge, JudgePair, LexicalJudge, make_judge
from rlkd_lite.structure.reward import StructureScore, structure_score, structure_scores
from rlkd_lite.structure.steps import Step, looks_tagged, parse_steps, render_steps, think_text

_MODEL_BACKED = ("GSRMDecomposer", "LLMJudge")

__all__ = [
    "AutoDecomposer", "DecomposeInput", "Decomposer", "ExactJudge", "Judge", "JudgePair",
    "LexicalJudge", "RulesDecomposer", "Step", "StructureScore", "TaggedDecomposer",
    "looks_tagged", "make_decomposer", "make_judge", "parse_steps", "render_steps",
    "structure_score", "structure_scores", "think_text", *_MODEL_BACKED,
]


def __getattr__(name: str) -> Any:
    if name in _MODEL_BACKED:
        from rlkd_lite.structure import llm

        return getattr(llm, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
