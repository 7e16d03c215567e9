"""Teacher traces are decomposed once per run, before training, and cached on disk.

The cache key is the hash of the decomposer's identity (for the gsrm decomposer: the model,
the adapter's files and the token room), of the code that decomposes (`decomposition_code_digest`)
and of the trace text, so a changed trace, decomposer or rlkd-lite version never reuses a stale
decomposition.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
from collections.abc import Callable, Sequence
from pathlib import Path

from rlkd_lite.data.jsonl import append_jsonl
from rlkd_lite.structure.decomposers import DecomposeInput
from rlkd_lite.structure.steps import Step, steps_to_dicts


DECOMPOSITION_MODULES = (
    "rlkd_lite.data.answers",           # plain_math: LaTeX and numbers cleaned for the rules
    "rlkd_lite.structure.judges",       # arithmetic_value: where the rules split a chain
    "rlkd_lite.structure.steps",        # the step parser and format
    "rlkd_lite.structure.decomposers",  # the rules, tagged and auto decomposers
    "rlkd_lite.structure.llm",          # the gsrm decomposer's prompt and stopping rule
)
"""The modules whose code decides what a decomposer writes for a trace."""


@functools.cache
def decomposition_code_digest() -> str:
    """A short hash of the source of `DECOMPOSITION_MODULES`: a run resumed after an upgrade
    that changed how traces are decomposed (a new rules case, a new prompt) decomposes its
    teacher traces again instead of mixing old and new decompositions. Read through each
    module's loader (a file, or a member of a zip), so the torch-backed gsrm module is not
    imported."""
    digest = hashlib.sha256()
    for name in DECOMPOSITION_MODULES:
        spec = importlib.util.find_spec(name)
        digest.update(spec.loader.get_data(spec.origin))
    return digest.hexdigest()[:16]


def cache_key(decomposer_id: str, question: str, reasoning: str) -> str:
    payload = json.dumps([decomposer_id, decomposition_code_digest(), question, reasoning],
                         ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def decompose_teachers(items: Sequence[DecomposeInput], decomposer: Callable,
                       decomposer_id: str, cache_file: Path, batch_size: int = 64,
                       on_batch: Callable[[int], None] | None = None,
                       write_cache: bool = True) -> list[list[Step]]:
    """Steps for each teacher trace, from the cache where present, else decomposed in batches
    (each batch appended to the cache as it finishes, so an interrupted run keeps its work).
    `write_cache` False only reads the cache: the other processes of a distributed run, whose
    appends would interleave with the main process's."""
    cached: dict[str, list[Step]] = {}
    if cache_file.is_file():
        for line in cache_file.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
                cached[row["key"]] = [Step(**s) for s in row["steps"]]
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line from a crash: recompute that item
    if write_cache:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
    keys = [cache_key(decomposer_id, it.question, it.reasoning) for it in items]
    todo = [i for i, k in enumerate(keys) if k not in cached]
    for start in range(0, len(todo), batch_size):
        batch = todo[start:start + batch_size]
        results = decomposer([items[i] for i in batch])
        for i, steps in zip(batch, results):
            cached[keys[i]] = list(steps)
            if write_cache:
                append_jsonl(cache_file, {"key": keys[i], "steps": steps_to_dicts(steps)})
        if on_batch:
            on_batch(len(batch))
    return [cached[k] for k in keys]
