"""The run directory's logs: read back after a crash, trimmed on resume."""
from __future__ import annotations

import json

from rlkd_lite.train.run_dir import RunDir


def test_resume_trims_logs_past_the_checkpoint_and_survives_a_torn_line(tmp_path):
    run = RunDir(tmp_path)
    for step in (1, 2, 3):
        run.log_metrics({"step": step, "reward": float(step)})
    with open(run.metrics, "a", encoding="utf-8") as handle:
        handle.write('{"step": 4, "rew')  # the process died in the middle of a write
    run.log_sample({"step": 3, "question": "q"})

    torn = []
    assert [r["step"] for r in run.read_log(run.metrics, on_error=torn.append)] == [1, 2, 3]
    assert len(torn) == 1 and torn[0].line == 4
    run.forget_after(2)
    assert [json.loads(line)["step"] for line in run.metrics.read_text().splitlines()] == [1, 2]
    assert run.sample_rows() == []


def test_logs_that_do_not_exist_yet_read_as_empty(tmp_path):
    run = RunDir(tmp_path)
    assert run.metric_rows() == [] and run.sample_rows() == [] and run.trend(["reward"]) == {}
    run.forget_after(5)  # nothing to trim, nothing created
    assert not run.metrics.exists()


def test_trend_compares_the_first_and_last_quarter(tmp_path):
    run = RunDir(tmp_path)
    for step, reward in enumerate([1, 1, 2, 3, 5, 8, 13, 21], 1):
        run.log_metrics({"step": step, "reward": reward})
    assert run.trend(["reward", "missing"]) == {"reward": (1.0, 17.0)}
