"""The teacher-step cache: what it reuses and what makes it decompose again."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from rlkd_lite.structure.decomposers import DecomposeInput, make_decomposer
from rlkd_lite.structure.steps import Step, steps_to_dicts
from rlkd_lite.train import teacher_cache
from rlkd_lite.train.teacher_cache import (DECOMPOSITION_MODULES, decompose_teachers,
                                           decomposition_code_digest)


class CountingDecomposer:
    """The real rules decomposer, counting the items it is asked for."""

    def __init__(self) -> None:
        self.rules, self.calls = make_decomposer("rules"), []

    def __call__(self, items):
        self.calls.append(len(items))
        return self.rules(items)


TRACE = DecomposeInput("How many apples are left?", "He has 12 - 5 = 7 apples left.")


def test_a_cached_trace_is_not_decomposed_again(tmp_path):
    cache, decomposer = tmp_path / "teacher_steps.jsonl", CountingDecomposer()
    first = decompose_teachers([TRACE], decomposer, "rules", cache)
    again = decompose_teachers([TRACE], decomposer, "rules", cache)
    assert first == again and first[0][0].answer == "7"
    assert decomposer.calls == [1]


def test_another_trace_or_decomposer_is_decomposed_anew(tmp_path):
    cache, decomposer = tmp_path / "teacher_steps.jsonl", CountingDecomposer()
    decompose_teachers([TRACE], decomposer, "rules", cache)
    decompose_teachers([DecomposeInput(TRACE.question, "He has 12 - 4 = 8 apples left.")],
                       decomposer, "rules", cache)
    decompose_teachers([TRACE], decomposer, "gsrm:other", cache)
    assert decomposer.calls == [1, 1, 1]
    assert len(cache.read_text().splitlines()) == 3


def test_changed_decomposition_code_invalidates_the_cache(tmp_path, monkeypatch):
    # A run resumed after an upgrade of the rules (or the gsrm prompt) must not mix old and new
    # decompositions: a cached entry written by other code is a miss.
    cache, decomposer = tmp_path / "teacher_steps.jsonl", CountingDecomposer()
    decompose_teachers([TRACE], decomposer, "rules", cache)
    stale = [Step("stale meta", "stale problem", "0")]
    key = json.loads(cache.read_text())["key"]
    cache.write_text(json.dumps({"key": key, "steps": steps_to_dicts(stale)}) + "\n")
    assert decompose_teachers([TRACE], decomposer, "rules", cache) == [stale]

    monkeypatch.setattr(teacher_cache, "decomposition_code_digest", lambda: "a newer version")
    steps = decompose_teachers([TRACE], decomposer, "rules", cache)
    assert steps != [stale] and steps[0][0].answer == "7"
    assert decomposer.calls == [1, 1]


def test_code_digest_covers_the_decomposing_modules():
    digest = decomposition_code_digest()
    assert len(digest) == 16 and int(digest, 16) >= 0
    files = [Path(importlib.util.find_spec(name).origin) for name in DECOMPOSITION_MODULES]
    assert all(f.is_file() and f.suffix == ".py" for f in files)
    # The rules decomposer and the gsrm prompt are among them.
    assert {"decomposers.py", "llm.py", "steps.py"} <= {f.name for f in files}


def test_code_digest_changes_with_the_source_of_a_decomposing_module(tmp_path, monkeypatch,
                                                                      request):
    request.addfinalizer(decomposition_code_digest.cache_clear)  # the real modules' digest
    module = tmp_path / "rlkd_test_rules.py"
    module.write_text("STEP_PATTERN = 'a'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(teacher_cache, "DECOMPOSITION_MODULES", ("rlkd_test_rules",))
    decomposition_code_digest.cache_clear()
    before = decomposition_code_digest()
    module.write_text("STEP_PATTERN = 'b'\n")
    decomposition_code_digest.cache_clear()
    assert decomposition_code_digest() != before
