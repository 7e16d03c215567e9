"""The run directory: logs read back after a crash and trimmed on resume; one process at a time."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rlkd_lite.errors import RlkdError
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


def test_read_log_passes_the_rows_a_check_refuses_to_on_error(tmp_path):
    """The report reads samples.jsonl so: only rows it can show; none when there is no log."""
    from rlkd_lite.errors import InputError

    def positive_step(row, path, line):
        if row["step"] <= 0:
            raise InputError("not positive", path=str(path), line=line, field="step")

    run = RunDir(tmp_path)
    refused = []
    assert run.read_log(run.samples, refused.append, check=positive_step) == []
    run.samples.write_text("")  # created, nothing logged yet
    assert run.read_log(run.samples, refused.append, check=positive_step) == []
    for step in (1, 0, 2):
        run.log_sample({"step": step})
    assert run.read_log(run.samples, refused.append, check=positive_step) == [
        {"step": 1}, {"step": 2}]
    assert [(error.line, error.field) for error in refused] == [(2, "step")]


def test_trend_compares_the_first_and_last_quarter(tmp_path):
    run = RunDir(tmp_path)
    for step, reward in enumerate([1, 1, 2, 3, 5, 8, 13, 21], 1):
        run.log_metrics({"step": step, "reward": reward})
    assert run.trend(["reward", "missing"]) == {"reward": (1.0, 17.0)}


def hold_lock_in_another_process(path) -> subprocess.Popen:
    """A second process that locks `path` as a running `rlkd-lite train` does, until killed."""
    code = ("import pathlib, sys\n"
            "from rlkd_lite.train.run_dir import RunDir\n"
            "with RunDir(pathlib.Path(sys.argv[1])).locked():\n"
            "    print('held', flush=True)\n"
            "    sys.stdin.read()\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_directory_in_use_by_another_process_is_refused_until_it_dies(tmp_path):
    run = RunDir(tmp_path / "run")
    holder = hold_lock_in_another_process(run.path)
    try:
        with pytest.raises(RlkdError, match=rf"in use by another run \(process {holder.pid}\)"):
            with run.locked():
                pass
    finally:
        holder.kill()  # as a crash would: the OS drops the lock with the process
        holder.wait()
    with run.locked():
        assert (run.path / ".lock").read_text() == str(os.getpid())


def test_training_into_a_locked_directory_fails_before_loading_a_model(tmp_path):
    from typer.testing import CliRunner

    from rlkd_lite.cli import app

    holder = hold_lock_in_another_process(tmp_path / "run")
    try:
        result = CliRunner().invoke(app, ["train", "--recipe", "tiny-cpu",
                                          "--output-dir", str(tmp_path / "run")])
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == 1
    assert "in use by another run" in result.output.replace("\n", " ")
    assert "loading" not in result.output
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [".lock"]


def test_a_refused_run_into_a_new_directory_leaves_nothing_behind(tmp_path):
    run = RunDir(tmp_path / "new")
    with pytest.raises(RlkdError, match="nothing to resume"):
        with run.locked():
            run.prepare({"model": "x"}, resume=True)
    assert not run.path.exists()


def test_the_last_checkpoint_is_the_newest_whose_state_reads(tmp_path):
    run = RunDir(tmp_path)
    for step, state in ((1, "{}"), (2, '{"global_step": 2}'), (3, '{"global_st'), (10, None)):
        folder = run.checkpoints / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        if state is not None:
            (folder / "trainer_state.json").write_text(state)
    # 10: no state yet (a save in progress); 3: torn by a crash; 2 is the last complete one.
    assert run.last_checkpoint() == run.checkpoints / "checkpoint-2"


def test_only_the_main_process_of_a_distributed_run_holds_the_lock(tmp_path, monkeypatch):
    run = RunDir(tmp_path / "run")
    holder = hold_lock_in_another_process(run.path)  # rank 0
    try:
        monkeypatch.setenv("RANK", "1")
        with run.locked():  # rank 1 of the same run goes on
            assert (run.path / ".lock").read_text() == str(holder.pid)
    finally:
        holder.kill()
        holder.wait()


def test_a_file_system_without_locks_lets_the_run_go_on_with_a_warning(tmp_path, monkeypatch,
                                                                      caplog):
    import errno
    import fcntl

    def no_locks(handle, operation):  # as on some network mounts
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    run = RunDir(tmp_path / "run")
    with caplog.at_level("WARNING"), run.locked():
        run.log_metrics({"step": 1})
    assert "cannot lock the run directory (No locks available)" in caplog.text
    assert run.metric_rows() == [{"step": 1}]


def test_only_the_main_process_writes_the_run_directory(tmp_path, monkeypatch):
    from rlkd_lite.train.config import load_config
    from rlkd_lite.train.run import open_run

    config = load_config("tiny-cpu", {"output_dir": str(tmp_path / "run")})
    run = RunDir(tmp_path / "run")
    run.prepare({"learning_rate": 0.5}, resume=False)
    run.log_metrics({"step": 1})
    monkeypatch.setenv("RANK", "1")  # another rank of a distributed run
    with open_run(config, resume=False):
        pass
    assert run.metric_rows() == [{"step": 1}] and "0.5" in run.config.read_text()
    monkeypatch.setenv("RANK", "0")
    with open_run(config, resume=False):
        pass
    assert run.metric_rows() == [] and "0.5" not in run.config.read_text()


def test_resume_accepts_an_older_config_whose_paths_were_stored_relative(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "probs.jsonl").write_text("{}\n")
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    # Written before paths were stored absolute: relative to where that run started.
    run.config.write_text("data: probs.jsonl\nteacher: null\nlearning_rate: 0.1\n")
    config = {"data": str(tmp_path / "probs.jsonl"), "teacher": None, "learning_rate": 0.1}
    run.prepare(config, resume=True, path_fields=("data", "teacher"))
    assert "data: " + str(tmp_path / "probs.jsonl") in run.config.read_text()  # now absolute
    other = {**config, "data": str(tmp_path / "other.jsonl")}
    with pytest.raises(RlkdError, match="configuration changed in data"):
        run.prepare(other, resume=True, path_fields=("data", "teacher"))
