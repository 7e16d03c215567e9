"""In a distributed run (`accelerate launch`, `torchrun`) only the main process writes the run
directory's files; the other ranks train alongside it. No second process is started here: the
rank is what the launcher would set (RANK) or what the Trainer reports (is_world_process_zero).
"""
from __future__ import annotations

from pathlib import Path

import pytest
from transformers import TrainerControl, TrainerState

from rlkd_lite.structure.decomposers import DecomposeInput
from rlkd_lite.structure.steps import Step
from rlkd_lite.train.callbacks import RichProgressCallback, RunLogCallback, run_callbacks
from rlkd_lite.train.config import load_config
from rlkd_lite.train.rewards import LastBatch
from rlkd_lite.train.run_dir import RunDir
from rlkd_lite.train.teacher_cache import decompose_teachers

TEST_RECIPE = str(Path(__file__).parent / "recipes" / "tiny-test.yaml")


def one_logged_step(run: RunDir, world_process_zero: bool) -> None:
    last = LastBatch(questions=["q"], completions=["c"], rewards={"accuracy": [1.0]})
    callback = RunLogCallback(run, last, completions_per_generation=1, sample_every=1,
                              samples_per_log=1)
    state = TrainerState(is_world_process_zero=world_process_zero)
    state.global_step = 1
    callback.on_step_begin(None, state, None)
    callback.on_step_end(None, state, TrainerControl())
    callback.on_log(None, state, None, logs={"loss": 0.5})
    assert callback.latest["loss"] == 0.5  # every rank keeps its row


@pytest.mark.parametrize("world_process_zero", [True, False])
def test_only_the_main_process_logs_metrics_and_samples(tmp_path, world_process_zero):
    run = RunDir(tmp_path)
    one_logged_step(run, world_process_zero)
    assert len(run.metric_rows()) == int(world_process_zero)
    assert len(run.sample_rows()) == int(world_process_zero)


def test_only_the_main_process_shows_progress(monkeypatch):
    config = load_config(TEST_RECIPE)

    def progress_bars() -> int:
        _, callbacks = run_callbacks(RunDir(Path("unused")), None, config, "test")
        return sum(isinstance(c, RichProgressCallback) for c in callbacks)

    assert progress_bars() == 1
    monkeypatch.setenv("RANK", "1")
    assert progress_bars() == 0


def test_other_ranks_read_the_teacher_cache_but_do_not_write_it(tmp_path):
    cache = tmp_path / "cache" / "teacher_steps.jsonl"
    calls = []

    def decomposer(items):
        calls.append(len(items))
        return [[Step("m", item.question, "1")] for item in items]

    first, second = DecomposeInput("q1", "r1"), DecomposeInput("q2", "r2")
    steps = decompose_teachers([first], decomposer, "d", cache, write_cache=False)
    assert steps == [[Step("m", "q1", "1")]] and not cache.exists()

    decompose_teachers([first], decomposer, "d", cache)  # the main process writes it
    assert cache.is_file()
    calls.clear()
    steps = decompose_teachers([first, second], decomposer, "d", cache, write_cache=False)
    assert steps == [[Step("m", "q1", "1")], [Step("m", "q2", "1")]]
    assert calls == [1]  # only the item the cache lacked
    assert len(cache.read_text().splitlines()) == 1
