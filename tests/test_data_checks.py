"""Input checks through the CLI: GSM8K's own format in a problem file (`teach`), empty teacher
traces and JSON type names in `score`, a `--teacher` file's question (`eval`, refused before
any model loads)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from chat_server import ChatServer, Reply
from typer.testing import CliRunner

from rlkd_lite.cli import app

NATALIA = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many "
           "clips in May. How many clips did Natalia sell altogether in April and May?")
NATALIA_SOLUTION = ("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
                    "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n"
                    "#### 72")
TRACE = "He buys 3*4 = <<3*4=12>>12 eggs."


def cli(*args: str):
    """`rlkd-lite ARGS`: (exit code, output with whitespace collapsed)."""
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split())


def write_lines(path: Path, *rows) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A temporary working directory (short paths in messages)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_teach_takes_the_final_answer_of_a_gsm8k_solution(workdir, monkeypatch):
    # GSM8K's own format: the whole solution in "answer". A right reply is judged right.
    write_lines(workdir / "gsm8k.jsonl", {"id": "n", "question": NATALIA,
                                          "answer": NATALIA_SOLUTION})
    monkeypatch.setenv("RLKD_TEACH_KEY", "sk-test")
    with ChatServer(lambda request, attempt: Reply(NATALIA_SOLUTION)) as server:
        code, output = cli("teach", "--data", "gsm8k.jsonl", "--output", "teacher.jsonl",
                           "--api-base", server.base_url, "--api-model", "m",
                           "--api-key-env", "RLKD_TEACH_KEY", "--samples", "1")
    assert code == 0, output
    [row] = [json.loads(line) for line in Path("teacher.jsonl").read_text().splitlines()]
    assert row["answer"] == "72"
    assert row["reasoning"] == NATALIA_SOLUTION.rpartition("\n")[0]


@pytest.mark.parametrize(("empty", "field"), [
    ({"steps": []}, "steps"), ({"reasoning": ""}, "reasoning"),
    ({"reasoning": " \n"}, "reasoning"), ({"steps": [], "reasoning": TRACE}, "steps")])
def test_score_refuses_an_empty_teacher_trace_or_skips_it(workdir, empty, field):
    write_lines(workdir / "teacher.jsonl", {"id": "a", "reasoning": TRACE}, {"id": "b", **empty})
    write_lines(workdir / "student.jsonl", {"id": "a", "reasoning": TRACE},
                {"id": "b", "reasoning": TRACE})
    code, output = cli("score", "teacher.jsonl", "student.jsonl")
    assert code == 1
    assert f"error: teacher.jsonl:2: field '{field}': must not be empty" in output

    code, output = cli("score", "teacher.jsonl", "student.jsonl", "--skip-bad",
                       "--json", "r.json")
    assert code == 0, output
    assert f"skipped: teacher.jsonl:2: field '{field}': must not be empty" in output
    # The bad teacher line, and with it student "b" unpaired; "b" no longer lowers the mean.
    summary = json.loads(Path("r.json").read_text())["summary"]
    assert (summary["pairs"], summary["mean"], summary["skipped"]) == (1, 1.0, 2)


def test_score_takes_an_empty_student_trace_as_a_score_of_0(workdir):
    write_lines(workdir / "teacher.jsonl", {"id": "a", "reasoning": TRACE},
                {"id": "b", "reasoning": TRACE})
    write_lines(workdir / "student.jsonl", {"id": "a", "steps": []}, {"id": "b", "reasoning": ""})
    code, output = cli("score", "teacher.jsonl", "student.jsonl", "--json", "r.json")
    assert code == 0, output
    assert [item["reward"] for item in json.loads(Path("r.json").read_text())["items"]] == [0, 0]


@pytest.mark.parametrize(("file", "row", "expected"), [
    ("teacher", {"id": "a", "reasoning": 5}, "field 'reasoning': expected a string, got a number"),
    ("teacher", {"id": "a", "reasoning": None}, "field 'reasoning': expected a string, got null"),
    ("student", {"id": "a", "reasoning": False},
     "field 'reasoning': expected a string, got a boolean"),
    ("teacher", {"id": True, "reasoning": TRACE},
     "field 'id': expected a string or an integer, got a boolean"),
    ("student", {"id": 1.5, "reasoning": TRACE},
     "field 'id': expected a string or an integer, got a number"),
    ("teacher", {"id": "a", "question": 3, "reasoning": TRACE},
     "field 'question': expected a string, got a number"),
])
def test_score_names_json_types_as_every_command_does(workdir, file, row, expected):
    write_lines(workdir / "teacher.jsonl", {"id": "a", "reasoning": TRACE})
    write_lines(workdir / "student.jsonl", {"id": "a", "reasoning": TRACE})
    write_lines(workdir / f"{file}.jsonl", row)
    code, output = cli("score", "teacher.jsonl", "student.jsonl")
    assert code == 1
    assert f"error: {file}.jsonl:1: {expected}" in output


@pytest.mark.parametrize(("question", "expected"), [
    (5, "expected a string, got a number"), ("  ", "must not be empty")])
def test_a_teacher_files_question_must_be_text(workdir, question, expected):
    # Ignored, it would skip the check that the trace was made for this question.
    write_lines(workdir / "p.jsonl", {"id": "a", "question": "What is 1+2?", "answer": "3"})
    write_lines(workdir / "t.jsonl", {"id": "a", "question": question, "reasoning": "1+2 = 3"})
    # A model that is not there: had it loaded first, the error would be about the model.
    code, output = cli("eval", "--model", str(workdir / "no-model"), "--recipe", "tiny-cpu",
                       "--data", "p.jsonl", "--teacher", "t.jsonl")
    assert code == 1
    assert f"t.jsonl:1: field 'question': {expected}" in output
