"""`rlkd-lite score` end to end: the packaged examples, the JSON report, --show, bad input.

The packaged examples (rlkd_lite/examples/{teacher,student}.jsonl) score, with the default
auto decomposer and lexical judge:
    bakery  3    every step reproduced (free-form student vs annotated teacher)
    garden  2    tagged; step 2 answer wrong (0.5), step 3 same sub-problem, wrong answer (0.5)
    train   0    the student's first meta-reasoning differs, gating every step
    books   1    step 1 matches, step 2 meta differs (gated from there)
    paint   0    the student's reasoning is empty
    apples  2.5  student given as steps; last answer wrong (0.5)
so pairs 6, mean 8.5/6, median 1.5, full match 1/6, mean first divergence (0-based)
(1 + 0 + 1 + 0 + 2) / 5 = 0.8.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import rlkd_lite
from rlkd_lite.cli import app
from rlkd_lite.data.jsonl import append_jsonl, read_jsonl, write_json_atomic, write_jsonl_atomic
from rlkd_lite.errors import InputError, RlkdError

EXAMPLES = Path(rlkd_lite.__file__).parent / "examples"
EXPECTED_REWARDS = {"bakery": 3.0, "garden": 2.0, "train": 0.0, "books": 1.0, "paint": 0.0,
                    "apples": 2.5}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A temporary working directory holding copies of the examples (short paths in messages)."""
    shutil.copy(EXAMPLES / "teacher.jsonl", tmp_path / "teacher.jsonl")
    shutil.copy(EXAMPLES / "student.jsonl", tmp_path / "student.jsonl")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def score(*args: str):
    """Run `rlkd-lite score ARGS`; returns (exit code, output with whitespace collapsed)."""
    result = CliRunner().invoke(app, ["score", *args])
    return result.exit_code, " ".join(result.output.split())


def write_lines(path: Path, *rows) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


def test_examples_score_as_documented(workdir):
    code, output = score("teacher.jsonl", "student.jsonl", "--json", "report.json")
    assert code == 0, output
    report = json.loads((workdir / "report.json").read_text())
    assert {item["id"]: item["reward"] for item in report["items"]} == EXPECTED_REWARDS
    assert [item["id"] for item in report["items"]] == list(EXPECTED_REWARDS)  # teacher order
    by_id = {item["id"]: item for item in report["items"]}
    assert by_id["garden"]["step_rewards"] == [1.0, 0.5, 0.5]
    assert by_id["books"]["step_rewards"] == [1.0, 0.0, 0.0]
    assert by_id["paint"] == {"id": "paint", "reward": 0.0, "teacher_steps": 2, "student_steps": 0,
                              "step_rewards": []}
    summary = report["summary"]
    assert summary["pairs"] == 6
    assert summary["mean"] == pytest.approx(8.5 / 6)
    assert summary["median"] == 1.5
    assert summary["full_match"] == pytest.approx(1 / 6)
    assert summary["mean_first_divergence"] == pytest.approx(0.8)
    assert summary["skipped"] == 0
    assert "1.417" in output and "16.7%" in output and "report written to report.json" in output


def test_normalize_divides_by_teacher_steps(workdir):
    code, _ = score("teacher.jsonl", "student.jsonl", "--normalize", "--json", "report.json")
    assert code == 0
    rewards = {i["id"]: i["reward"] for i in json.loads(Path("report.json").read_text())["items"]}
    assert rewards == pytest.approx({"bakery": 1.0, "garden": 2 / 3, "train": 0.0,
                                     "books": 1 / 3, "paint": 0.0, "apples": 2.5 / 3})


def test_json_report_schema_is_exact(workdir):
    assert score("teacher.jsonl", "student.jsonl", "--json", "report.json")[0] == 0
    report = json.loads(Path("report.json").read_text())
    assert list(report) == ["summary", "items"]
    assert list(report["summary"])[:3] == ["pairs", "mean", "median"]
    assert isinstance(report["summary"]["pairs"], int)
    assert all(isinstance(report["summary"][k], float) for k in ("mean", "median"))
    for item in report["items"]:
        assert list(item) == ["id", "reward", "teacher_steps", "student_steps", "step_rewards"]
        assert isinstance(item["reward"], float)
        assert isinstance(item["teacher_steps"], int) and isinstance(item["student_steps"], int)
        assert all(isinstance(r, float) for r in item["step_rewards"])


def test_json_report_is_written_atomically(workdir, monkeypatch):
    Path("report.json").write_text("old report")
    assert score("teacher.jsonl", "student.jsonl", "--json", "report.json")[0] == 0
    assert json.loads(Path("report.json").read_text())["summary"]["pairs"] == 6
    assert sorted(p.name for p in workdir.iterdir()) == ["report.json", "student.jsonl",
                                                         "teacher.jsonl"]

    def crash(src, dst):
        raise OSError("disk gone")

    before = Path("report.json").read_text()
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(RlkdError, match="cannot write report.json: disk gone"):
        write_json_atomic("report.json", {"new": 1})
    assert Path("report.json").read_text() == before  # a failed write leaves the old file
    assert sorted(p.name for p in workdir.iterdir()) == ["report.json", "student.jsonl",
                                                         "teacher.jsonl"]


def test_show_prints_the_lowest_pairs_with_the_divergence_marked(workdir):
    code, output = score("teacher.jsonl", "student.jsonl", "--show", "2")
    assert code == 0
    assert "train: reward 0 (3 teacher / 3 student steps)" in output
    assert "paint: reward 0 (2 teacher / 0 student steps)" in output
    assert "the student has no steps" in output
    assert "first divergence" in output
    assert "Q: 60*3" in output and "Q: (60+40)/2" in output  # first steps of "train"
    assert "bakery: reward" not in output and "books: reward" not in output


def test_show_prints_latex_and_brackets_in_steps_as_written(workdir):
    steps = [{"meta": r"Halve it: \[ 48 \div 2 \] [bold]x[/]", "query": "48/2", "answer": "24"}]
    write_lines(Path("t.jsonl"), {"id": 1, "steps": steps})
    write_lines(Path("s.jsonl"), {"id": 1, "steps": [{**steps[0], "answer": "25"}]})
    code, output = score("t.jsonl", "s.jsonl", "--show", "1")
    assert code == 0
    assert r"Halve it: \[ 48 \div 2 \] [bold]x[/]" in output


def test_records_without_ids_pair_by_line_order(workdir):
    write_lines(Path("t.jsonl"), {"reasoning": "He buys 3*4 = <<3*4=12>>12 eggs."},
                {"reasoning": "She has 2+2 = <<2+2=4>>4 cats."})
    write_lines(Path("s.jsonl"), {"reasoning": "He buys 3 * 4 = 12 eggs."},
                {"reasoning": "No idea."})
    assert score("t.jsonl", "s.jsonl", "--json", "r.json")[0] == 0
    items = json.loads(Path("r.json").read_text())["items"]
    assert [(i["id"], i["reward"]) for i in items] == [(1, 1.0), (2, 0.0)]


def test_exact_judge_and_rules_decomposer_options(workdir):
    code, _ = score("teacher.jsonl", "student.jsonl", "--judge", "exact", "--decomposer", "rules",
                    "--json", "r.json")
    assert code == 0
    rewards = {i["id"]: i["reward"] for i in json.loads(Path("r.json").read_text())["items"]}
    # rules cannot read the tagged teacher traces (no computations): no steps, reward 0.
    assert rewards["garden"] == 0.0 and rewards["paint"] == 0.0
    assert rewards["apples"] == 2.5  # identical metas pass exact too


GOOD = {"id": "a", "reasoning": "He buys 3*4 = <<3*4=12>>12 eggs."}


@pytest.mark.parametrize("teacher_lines, expected", [
    ([GOOD, '{"id": "b", oops}'], "teacher.jsonl:2: not valid JSON"),
    (["[1, 2]"], "teacher.jsonl:1: expected a JSON object, got an array"),
    ([{"id": "a", "question": "q"}], "teacher.jsonl:1: field 'reasoning': missing"),
    ([{"id": "a", "reasoning": 5}],
     "teacher.jsonl:1: field 'reasoning': expected a string, got a number"),
    ([{"id": ["a"], "reasoning": "x"}],
     "teacher.jsonl:1: field 'id': expected a string or an integer"),
    ([{"id": True, "reasoning": "x"}],
     "teacher.jsonl:1: field 'id': expected a string or an integer"),
    ([{"id": "a", "question": 3, "reasoning": "x"}],
     "teacher.jsonl:1: field 'question': expected a string"),
    ([{"id": "a", "steps": "m q a"}],
     "teacher.jsonl:1: field 'steps': expected an array of steps, got a string"),
    ([{"id": "a", "steps": [{"meta": "m", "query": "q"}]}],
     "teacher.jsonl:1: field 'steps[0].answer': missing"),
    ([{"id": "a", "steps": [{"meta": "m", "query": "q", "answer": [4]}]}],
     "teacher.jsonl:1: field 'steps[0].answer': expected a string or a number, got an array"),
    ([{"id": "a", "steps": ["m"]}], "teacher.jsonl:1: field 'steps[0]': expected an object"),
    ([GOOD, {"id": "a", "reasoning": "again"}],
     "teacher.jsonl:2: field 'id': duplicate id 'a' (first on line 1)"),
    ([GOOD, {"reasoning": "no id"}],
     "teacher.jsonl:2: field 'id': missing: other records have an 'id'"),
    ([], "teacher.jsonl: empty file"),
    (["", "  "], "teacher.jsonl: empty file"),
])
def test_bad_teacher_lines_name_file_line_and_problem(workdir, teacher_lines, expected):
    write_lines(Path("teacher.jsonl"), *teacher_lines)
    write_lines(Path("student.jsonl"), GOOD)
    code, output = score("teacher.jsonl", "student.jsonl")
    assert code == 1
    assert f"error: {expected}" in output


def test_non_utf8_names_the_line(workdir):
    Path("teacher.jsonl").write_bytes(json.dumps(GOOD).encode()
                                      + b'\n{"id": "b", "reasoning": "caf\xe9"}\n')
    code, output = score("teacher.jsonl", "student.jsonl")
    assert code == 1
    assert "teacher.jsonl:2: not UTF-8: byte 0xe9 at column 30" in output


@pytest.mark.parametrize("teacher_rows, student_rows, expected", [
    ([GOOD, {"id": "b", "reasoning": "x"}, {"id": 7, "reasoning": "x"}],
     [GOOD, {"id": "7", "reasoning": "x"}, {"id": "z", "reasoning": "x"}],
     "1 id(s) of teacher.jsonl are not in student.jsonl: 'b'; "
     "1 id(s) of student.jsonl are not in teacher.jsonl: 'z'"),
    ([GOOD], [{"reasoning": "x"}],
     "teacher.jsonl has 'id' fields but student.jsonl does not"),
    ([{"reasoning": "x"}, {"reasoning": "y"}], [{"reasoning": "x"}],
     "teacher.jsonl has 2 records but student.jsonl has 1; "
     "without ids, records pair by line order"),
])
def test_files_that_do_not_pair(workdir, teacher_rows, student_rows, expected):
    write_lines(Path("teacher.jsonl"), *teacher_rows)
    write_lines(Path("student.jsonl"), *student_rows)
    code, output = score("teacher.jsonl", "student.jsonl")
    assert code == 1
    assert f"error: {expected}" in output


def test_records_of_other_questions_do_not_pair(workdir):
    write_lines(Path("teacher.jsonl"), {"id": "a", "question": "How many cats?", "reasoning": "x"},
                {"id": "b", "question": "How many dogs?", "reasoning": "x"})
    write_lines(Path("student.jsonl"), {"id": "a", "question": " How  many cats? ",
                                        "reasoning": "x"},
                {"id": "b", "question": "How many birds?", "reasoning": "x"})
    code, output = score("teacher.jsonl", "student.jsonl")
    assert code == 1
    assert ("student.jsonl:2: field 'question': record 'b' asks another question than in "
            "teacher.jsonl") in output
    code, output = score("teacher.jsonl", "student.jsonl", "--skip-bad", "--json", "r.json")
    assert code == 0, output
    report = json.loads(Path("r.json").read_text())
    assert [i["id"] for i in report["items"]] == ["a"] and report["summary"]["skipped"] == 1


def test_unpaired_ids_are_listed_up_to_five(workdir):
    write_lines(Path("teacher.jsonl"), *({"id": i, "reasoning": "x"} for i in range(8)))
    write_lines(Path("student.jsonl"), {"id": 0, "reasoning": "x"})
    code, output = score("teacher.jsonl", "student.jsonl")
    assert code == 1
    assert "7 id(s) of teacher.jsonl are not in student.jsonl: 1, 2, 3, 4, 5 and 2 more" in output


def test_an_unwritable_report_is_refused_before_scoring(workdir):
    Path("adir").mkdir()
    code, output = score("teacher.jsonl", "student.jsonl", "--decomposer", "gsrm", "--model",
                         "no/such-model", "--json", "adir")
    assert code == 1 and output.startswith("error: adir: is a directory"), output
    # Missing folders are made.
    code, output = score("teacher.jsonl", "student.jsonl", "--json", "no/such/dir/report.json")
    assert code == 0 and Path("no/such/dir/report.json").is_file(), output


def test_missing_file_and_missing_model(workdir):
    code, output = score("nope.jsonl", "student.jsonl")
    assert code == 1 and "error: nope.jsonl: cannot open: No such file or directory" in output
    code, output = score("teacher.jsonl", "student.jsonl", "--decomposer", "gsrm")
    assert code == 1 and "error: --model is required by --decomposer gsrm" in output
    code, output = score("teacher.jsonl", "student.jsonl", "--judge", "llm", "--decomposer", "gsrm")
    assert code == 1 and "--model is required by --decomposer gsrm and --judge llm" in output


def test_bad_files_fail_before_the_model_loads(workdir):
    write_lines(Path("student.jsonl"), {"id": "elsewhere", "reasoning": "x"})
    code, output = score("teacher.jsonl", "student.jsonl", "--decomposer", "gsrm", "--model",
                         "no/such-model")
    assert code == 1 and "id(s) of teacher.jsonl are not in student.jsonl" in output
    assert "no/such-model" not in output


def test_a_model_backed_decomposer_runs_a_batch_at_a_time_under_a_progress_bar(capsys):
    from rlkd_lite.eval.alignment import pair_files, score_pairs
    from rlkd_lite.structure.decomposers import RulesDecomposer
    from rlkd_lite.structure.judges import LexicalJudge

    class BatchedRules(RulesDecomposer):
        """The rules, called the way a model-backed decomposer (one with a batch_size) is."""
        batch_size = 4
        calls: list[int] = []

        def __call__(self, items, max_steps=None):
            self.calls.append([len(i.question) + len(i.reasoning) for i in items])
            return super().__call__(items)

    paired = pair_files(EXAMPLES / "teacher.jsonl", EXAMPLES / "student.jsonl")
    batched = score_pairs(paired, BatchedRules(), LexicalJudge())
    assert [len(call) for call in BatchedRules.calls] == [4, 4, 3]  # 11 traces to decompose
    lengths = [length for call in BatchedRules.calls for length in call]
    assert lengths == sorted(lengths)  # like lengths share a batch, as in one call
    assert "decompose" in capsys.readouterr().err
    at_once = score_pairs(paired, RulesDecomposer(), LexicalJudge())
    assert [p.score.reward for p in batched.pairs] == [p.score.reward for p in at_once.pairs]


@pytest.mark.slow
def test_gsrm_decomposer_and_llm_judge_from_a_model_and_a_saved_adapter(
        workdir, tiny_model_dir, tiny_peft_model):
    """The real thing on a tiny random model: its output is noise, so only shape is checked."""
    tiny_peft_model.save_pretrained("adapters", selected_adapters=["gsrm"])
    code, output = score("teacher.jsonl", "student.jsonl", "--decomposer", "gsrm", "--judge",
                         "llm", "--model", str(tiny_model_dir), "--adapter", "adapters/gsrm",
                         "--json", "report.json")
    assert code == 0, output
    report = json.loads(Path("report.json").read_text())
    assert report["summary"]["pairs"] == 6 and len(report["items"]) == 6
    assert all(0 <= item["reward"] <= item["teacher_steps"] for item in report["items"])


def test_model_options_without_a_model_backed_part_are_ignored_with_a_warning(workdir):
    code, output = score("teacher.jsonl", "student.jsonl", "--model", "tiny")
    assert code == 0
    assert "warning: --model and --adapter are ignored" in output


def test_skip_bad_counts_and_lists_skipped_lines(workdir):
    write_lines(Path("teacher.jsonl"), GOOD, "{not json", {"id": "a", "reasoning": "dup"},
                {"id": "b"}, {"id": "c", "reasoning": "She has 2+2 = <<2+2=4>>4 cats."},
                {"id": "only-teacher", "reasoning": "x"})
    write_lines(Path("student.jsonl"), GOOD, {"id": "c", "reasoning": "She has 2 + 2 = 4 cats."},
                {"id": "b", "reasoning": "x"}, '"a string"')
    code, output = score("teacher.jsonl", "student.jsonl", "--skip-bad", "--json", "r.json")
    assert code == 0, output
    report = json.loads(Path("r.json").read_text())
    assert [(i["id"], i["reward"]) for i in report["items"]] == [("a", 1.0), ("c", 1.0)]
    # teacher: bad JSON, duplicate, missing reasoning; student: not an object; unpaired: 2 ids.
    assert report["summary"]["skipped"] == 6
    assert "skipped: teacher.jsonl:2: not valid JSON" in output
    assert "skipped: and 1 more" in output
    assert "skipped (bad lines, unpaired) │ 6" in output


def test_skip_bad_still_fails_when_nothing_is_left(workdir):
    write_lines(Path("teacher.jsonl"), "{bad")
    code, output = score("teacher.jsonl", "student.jsonl", "--skip-bad")
    assert code == 1 and "no valid pairs to score" in output


def test_skip_bad_without_ids_drops_the_partner_of_a_bad_line(workdir):
    write_lines(Path("teacher.jsonl"), {"reasoning": "A 1+1 = 2 x."}, "{bad",
                {"reasoning": "B 2+2 = 4 y."})
    write_lines(Path("student.jsonl"), {"reasoning": "A 1+1 = 2 x."}, {"reasoning": "C"},
                {"reasoning": "B 2+2 = 4 y."})
    code, _ = score("teacher.jsonl", "student.jsonl", "--skip-bad", "--json", "r.json")
    assert code == 0
    items = json.loads(Path("r.json").read_text())["items"]
    assert [(i["id"], i["reward"]) for i in items] == [(1, 1.0), (3, 1.0)]


def test_read_jsonl_skips_blank_lines_and_a_byte_order_mark(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n\n  \n{"a": 2}')
    assert list(read_jsonl(path)) == [(1, {"a": 1}), (4, {"a": 2})]
    problems = []
    path.write_text('{"a": 1}\nnope\n{"a": 3}\n')
    assert list(read_jsonl(path, on_error=problems.append)) == [(1, {"a": 1}), (3, {"a": 3})]
    assert [(p.path, p.line) for p in problems] == [(str(path), 2)]
    assert isinstance(problems[0], InputError)


def test_write_jsonl_atomic_round_trips(tmp_path):
    rows = [{"id": 1, "text": "café ✓"}, {"id": 2, "nested": {"a": [1, 2]}}]
    write_jsonl_atomic(tmp_path / "rows.jsonl", rows)
    assert [row for _, row in read_jsonl(tmp_path / "rows.jsonl")] == rows
    assert "café ✓" in (tmp_path / "rows.jsonl").read_text(encoding="utf-8")  # not \u-escaped
    assert [p.name for p in tmp_path.iterdir()] == ["rows.jsonl"]


def test_append_jsonl_starts_a_fresh_line_after_a_torn_one(tmp_path):
    path = tmp_path / "out.jsonl"
    append_jsonl(path, {"n": 1})
    with open(path, "a") as handle:
        handle.write('{"n": 2, "tru')  # a crash mid-write
    append_jsonl(path, {"n": 3})
    assert path.read_text().splitlines() == ['{"n": 1}', '{"n": 2, "tru', '{"n": 3}']


def test_output_to_a_file_or_pipe_is_wide_enough_for_tables(monkeypatch):
    from rlkd_lite.console import LOG_WIDTH, make_console

    import io
    import sys

    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr(sys, "stdout", io.StringIO())  # no terminal, even under pytest -s
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert make_console().width == make_console(stderr=True).width == LOG_WIDTH
    monkeypatch.setenv("COLUMNS", "100")  # the user's choice wins
    assert make_console().width == 100
