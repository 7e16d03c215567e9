"""Output paths are checked before any work: a file where a folder should be, a folder where a
file should be, an output that is one of the inputs, a corrupt run configuration. Each gives one
`error:` line naming the path and exit 1 (or Typer's usage error, exit 2), never a traceback,
and leaves what was there as it was. No test here loads a model."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import rlkd_lite
from rlkd_lite.cli import app
from rlkd_lite.data.jsonl import write_text_atomic
from rlkd_lite.errors import InputError, RlkdError
from rlkd_lite.train.run_dir import RunDir

EXAMPLES = Path(rlkd_lite.__file__).parent / "examples"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A working directory holding `afile` (a plain file) and the example traces."""
    (tmp_path / "afile").write_text("keep me\n")
    shutil.copy(EXAMPLES / "teacher.jsonl", tmp_path / "teacher.jsonl")
    shutil.copy(EXAMPLES / "student.jsonl", tmp_path / "student.jsonl")
    (tmp_path / "adir").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def cli(*args: str) -> tuple[int, str]:
    """Run `rlkd-lite ARGS` in the working directory; (exit code, output with whitespace
    collapsed and the working directory left out of paths, which some commands make absolute)."""
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.exception)  # no traceback: a clean exit, whatever its code
    return result.exit_code, " ".join(result.output.split()).replace(f"{Path.cwd()}/", "")


def assert_error(result: tuple[int, str], message: str) -> None:
    code, output = result
    assert code == 1, output
    assert output == f"error: {message}", output


def test_an_atomic_write_under_a_file_reports_the_write_error_not_the_cleanup(workdir):
    with pytest.raises(RlkdError, match=r"^cannot write afile/x\.json: Not a directory$"):
        write_text_atomic("afile/x.json", "{}")
    assert (workdir / "afile").read_text() == "keep me\n"


UNDER_A_FILE = "cannot be created: afile is a file, not a folder"


@pytest.mark.parametrize("args, message", [
    (["eval", "--data", "synthetic", "-o", "afile/eval.json"], f"afile/eval.json: {UNDER_A_FILE}"),
    (["eval", "--data", "synthetic", "-o", "adir"],
     "adir: is a directory; give a file path (e.g. adir/eval.json)"),
    (["eval", "--data", "teacher.jsonl", "-o", "./teacher.jsonl"],
     "teacher.jsonl: is also the input --data; choose another path for the output"),
    (["bench", "--recipe", "bench-tiny", "--shape", "tiny", "--workdir", "work",
      "--json", "afile/b.json"], f"afile/b.json: {UNDER_A_FILE}"),
    (["bench", "--recipe", "bench-tiny", "--shape", "tiny", "--workdir", "work", "--json", "adir"],
     "adir: is a directory; give a file path (e.g. adir/bench.json)"),
    (["bench", "--recipe", "bench-tiny", "--shape", "tiny", "--workdir", "afile"],
     "afile: is a file, not a folder"),
    (["bench", "--recipe", "bench-tiny", "--shape", "tiny", "--workdir", "afile/w"],
     f"afile/w: {UNDER_A_FILE}"),
    (["report", "run", "-o", "afile/x.html"], f"afile/x.html: {UNDER_A_FILE}"),
    (["report", "run", "-o", "adir"],
     "adir: is a directory; give a file path (e.g. adir/report.html)"),
    (["score", "teacher.jsonl", "student.jsonl", "--json", "adir"],
     "adir: is a directory; give a file path (e.g. adir/report.json)"),
])
def test_outputs_are_refused_before_any_work(workdir, args, message):
    # `run` does not exist: report would fail on it, but only after checking -o.
    assert_error(cli(*args), message)
    assert not (workdir / "work").exists()  # bench built no model
    assert (workdir / "afile").read_text() == "keep me\n"


def test_evals_default_output_is_refused_before_any_work(workdir):
    (workdir / "eval.json").mkdir()  # where eval writes without -o (no run directory)
    assert_error(cli("eval", "--data", "synthetic"),
                 "eval.json: is a directory; give a file path (e.g. eval.json/eval.json)")


@pytest.mark.parametrize("args", [
    ["train", "--recipe", "tiny-cpu", "--dry-run"],
    ["train", "--recipe", "tiny-cpu"],
    ["gsrm", "train", "--recipe", "gsrm-tiny-cpu", "--dry-run"],
    ["gsrm", "train", "--recipe", "gsrm-tiny-cpu", "--examples", "teacher.jsonl"],
])
@pytest.mark.parametrize("output_dir, message", [
    ("afile", "afile: is a file, not a folder"),
    ("afile/run", f"afile/run: {UNDER_A_FILE}"),
])
def test_a_run_directory_that_cannot_be_a_folder_is_refused(workdir, args, output_dir, message):
    assert_error(cli(*args, "--output-dir", output_dir), message)
    assert (workdir / "afile").read_text() == "keep me\n"


def test_locking_a_run_directory_that_is_a_file_raises_a_clean_error(workdir):
    with pytest.raises(InputError, match="^afile: is a file, not a folder$"):
        with RunDir(Path("afile")).locked():
            pass


@pytest.mark.parametrize("config_text, message", [
    ("model: [unclosed\n",
     "config.yaml:2: not valid YAML: expected ',' or ']', but got '<stream end>'"),
    ("- qwen2.5-1.5b\n", "config.yaml: a list, where the run's settings were expected"),
])
@pytest.mark.parametrize("resume", [[], ["--resume"]])
def test_a_corrupt_config_in_the_run_directory_is_named(workdir, config_text, message, resume):
    (workdir / "run").mkdir()
    (workdir / "run" / "config.yaml").write_text(config_text)
    # Refused as the run directory is prepared, before the model loads.
    assert_error(cli("train", "--recipe", "tiny-cpu", "--data", "synthetic", "--output-dir",
                     "run", *resume), f"run/{message}")
    assert (workdir / "run" / "config.yaml").read_text() == config_text


@pytest.mark.parametrize("args, message", [
    (["--shape", "tinyy"], "Invalid value for '--shape'"),
    (["--steps", "0"], "Invalid value for '--steps'"),
    (["--steps", "-2"], "Invalid value for '--steps'"),
    (["--warmup-steps", "-1"], "Invalid value for '--warmup-steps'"),
])
def test_bench_refuses_an_unknown_shape_and_too_few_steps(workdir, args, message):
    code, output = cli("bench", "--recipe", "bench-tiny", "--workdir", "work", *args)
    assert code == 2 and message in output, output
    assert not (workdir / "work").exists()


@pytest.mark.parametrize("output", ["teacher.jsonl", "./teacher.jsonl", "adir/../teacher.jsonl",
                                    "link.jsonl"])
def test_score_refuses_to_write_its_report_over_an_input(workdir, output):
    (workdir / "link.jsonl").symlink_to(workdir / "teacher.jsonl")
    before = (workdir / "teacher.jsonl").read_bytes()
    assert_error(cli("score", "teacher.jsonl", "student.jsonl", "--json", output),
                 f"{Path(output)}: is also the input TEACHER; choose another path for the output")
    assert (workdir / "teacher.jsonl").read_bytes() == before


def test_score_refuses_the_student_file_as_its_report(workdir):
    assert_error(cli("score", "teacher.jsonl", "student.jsonl", "--json", "student.jsonl"),
                 "student.jsonl: is also the input STUDENT; choose another path for the output")


@pytest.fixture
def problems(workdir) -> Path:
    """A problems file as `teach` reads it and `gsrm label --from rules` labels it."""
    from rlkd_lite.data.problems import load_problems

    path = workdir / "problems.jsonl"
    path.write_text("".join(json.dumps({"id": p.id, "question": p.question, "answer": p.answer,
                                        "reasoning": p.reasoning}) + "\n"
                            for p in load_problems("synthetic", subset=3)))
    return path


@pytest.mark.parametrize("args, given_as", [
    (["teach", "--model", "not-loaded", "--data", "problems.jsonl", "--output", "problems.jsonl"],
     "--data"),
    (["teach", "--model", "not-loaded", "--data", "problems.jsonl", "--output", "out.jsonl",
      "--rejects", "problems.jsonl"], "--data"),
    (["gsrm", "label", "--from", "problems.jsonl", "--output", "problems.jsonl"], "--from"),
    (["gsrm", "label", "--from", "rules", "--data", "problems.jsonl", "--output",
      "problems.jsonl"], "--data"),
    (["gsrm", "label", "--from", "rules", "--data", "synthetic", "--teacher", "problems.jsonl",
      "--output", "out.jsonl", "--rejects", "problems.jsonl"], "--teacher"),
])
def test_jobs_refuse_to_append_to_their_input(problems, args, given_as):
    before = problems.read_bytes()
    assert_error(cli(*args), f"problems.jsonl: is also the input {given_as}; choose another path "
                             f"for the output")
    assert problems.read_bytes() == before
    assert not (problems.parent / "out.jsonl").exists()


def test_a_teacher_file_of_any_name_is_an_input_too(problems):
    # Teacher traces are read from any path, not only from .jsonl ones.
    teacher = problems.with_suffix(".json")
    problems.rename(teacher)
    assert_error(cli("gsrm", "label", "--from", "rules", "--data", "synthetic", "--subset", "3",
                     "--teacher", "problems.json", "--output", "problems.json"),
                 "problems.json: is also the input --teacher; choose another path for the output")
