"""Loading problems by data spec, validating JSONL input, and the rows handed to TRL."""
from __future__ import annotations

import json

import pytest

from rlkd_lite.data.problems import (
    DEFAULT_SUBSET, Problem, load_problems, problems_to_rows, split_gsm8k_solution,
    write_problems_jsonl)
from rlkd_lite.errors import InputError, RlkdError
from rlkd_lite.structure.steps import Step

STEP = {"meta": "First find the daily pay.", "query": "What is 3*4?", "answer": "12"}


def write_lines(path, rows):
    """Write JSONL by hand: dicts as JSON, strings verbatim (for broken lines)."""
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


def assert_names(error: pytest.ExceptionInfo, path: str, line: int, field: str) -> None:
    message = str(error.value)
    assert f"{path}:{line}:" in message, message
    assert f"field '{field}'" in message, message


# --- synthetic ---------------------------------------------------------------------------------

def test_synthetic_default_size_and_trace():
    problems = load_problems("synthetic")
    assert len(problems) == DEFAULT_SUBSET
    first = problems[0]
    assert first.id == "syn-train-000000" and first.source == "synthetic"
    # The teacher reasoning is the worked solution without its "#### N" line.
    assert "####" not in first.reasoning and "<<" in first.reasoning
    assert first.steps and first.steps[-1].answer == first.answer


def test_synthetic_subset_seed_and_split():
    assert len(load_problems("synthetic", subset=5)) == 5
    assert load_problems("synthetic", subset=5, seed=1) != load_problems("synthetic", subset=5)
    assert all(p.id.startswith("syn-test-")
               for p in load_problems("synthetic", subset=5, split="test"))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"spec": "mnist"}, "expected one of: synthetic, gsm8k, gsm8k-subset, or a path to a .jsonl"),
    ({"spec": "synthetic", "split": "dev"}, "unknown split 'dev'"),
    ({"spec": "synthetic", "subset": 0}, "subset must be at least 1"),
])
def test_bad_spec_split_or_subset(kwargs, message):
    with pytest.raises(RlkdError, match=message):
        load_problems(kwargs.pop("spec"), **kwargs)


# --- gsm8k -------------------------------------------------------------------------------------
# `datasets.load_dataset` is monkeypatched in these tests: it stands in for the Hugging Face
# Hub, which tests must never touch. HF_DATASETS_OFFLINE keeps the Hub away even if a patch
# were missed.

GSM8K_ROWS = [
    {"question": "Ana has 3 bags of 4 apples. How many apples?",
     "answer": "She has 3*4=<<3*4=12>>12 apples.\n#### 12"},
    {"question": "Bo reads 10 pages a day for 7 days, then 5 more. How many pages?",
     "answer": "He reads 10*7=<<10*7=70>>70 pages.\nThen 70+5=<<70+5=75>>75 pages.\n#### 75"},
    {"question": "A third one.", "answer": "1+1=<<1+1=2>>2\n#### 2"},
]


@pytest.fixture
def hub(monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    calls = []

    def patch(rows=None, error=None):
        def load_dataset(*args, **kwargs):
            calls.append((args, kwargs))
            if error:
                raise error
            return rows
        monkeypatch.setattr(datasets, "load_dataset", load_dataset)
        return calls
    return patch


def test_gsm8k_offline_names_the_offline_alternatives(hub):
    hub(error=ConnectionError("Couldn't reach 'openai/gsm8k' on the Hub (LocalEntryNotFoundError)"))
    with pytest.raises(RlkdError) as error:
        load_problems("gsm8k")
    message = str(error.value)
    assert "openai/gsm8k" in message and "ConnectionError" in message
    assert "--data synthetic" in message and "--data PATH.jsonl" in message


def test_gsm8k_rows_become_problems(hub):
    calls = hub(rows=GSM8K_ROWS)
    problems = load_problems("gsm8k", subset=2, split="test")
    assert calls == [(("openai/gsm8k", "main"), {"split": "test"})]
    assert problems == [
        Problem(id="gsm8k-test-00000", question=GSM8K_ROWS[0]["question"], answer="12",
                reasoning="She has 3*4=<<3*4=12>>12 apples.", steps=None, source="gsm8k"),
        Problem(id="gsm8k-test-00001", question=GSM8K_ROWS[1]["question"], answer="75",
                reasoning="He reads 10*7=<<10*7=70>>70 pages.\nThen 70+5=<<70+5=75>>75 pages.",
                steps=None, source="gsm8k")]


def test_gsm8k_takes_everything_unless_limited(hub):
    hub(rows=GSM8K_ROWS)
    assert len(load_problems("gsm8k")) == 3
    assert len(load_problems("gsm8k-subset")) == 3  # fewer rows than the default subset
    assert len(load_problems("gsm8k-subset", subset=1)) == 1


def test_gsm8k_row_without_final_answer(hub):
    hub(rows=[{"question": "q", "answer": "no marker here"}])
    with pytest.raises(RlkdError, match=r"openai/gsm8k train row 0: no final answer after '####'"):
        load_problems("gsm8k")


def test_split_gsm8k_solution():
    assert split_gsm8k_solution("a\nb = <<1+1=2>>2\n#### 2 ") == ("a\nb = <<1+1=2>>2", "2")
    with pytest.raises(ValueError):
        split_gsm8k_solution("#### ")


def test_split_gsm8k_solution_keeps_markdown_headings_in_the_reasoning():
    """Instruct models head their steps "#### Step 1: ..." or "#### 1. ...": only the last
    "####" followed by a number is the answer marker."""
    reasoning = "#### Step 1: Clips\nShe sold 48/2 = 24.\n#### 2. Total\n48+24 = 72"
    assert split_gsm8k_solution(f"{reasoning}\n#### 72") == (reasoning, "72")
    assert split_gsm8k_solution(f"{reasoning}\n####$1,200") == (reasoning, "$1,200")
    with pytest.raises(ValueError):  # headings, but no answer line
        split_gsm8k_solution(f"{reasoning}\nThe answer is 72.")


# --- JSONL -------------------------------------------------------------------------------------

def test_jsonl_problems(tmp_path):
    path = write_lines(tmp_path / "p.jsonl", [
        {"id": "a", "question": "Q1?", "answer": "7", "reasoning": "3+4 = 7"},
        "",
        {"question": "Q2?", "answer": 12, "steps": [STEP], "source": "handmade"},
        {"id": 9, "question": "Q3?", "answer": 2.5, "reasoning": "r", "steps": [STEP],
         "extra": "ignored"},
    ])
    assert load_problems(path) == [
        Problem("a", "Q1?", "7", "3+4 = 7", None, source=path),
        Problem("3", "Q2?", "12", None, [Step(**STEP)], source="handmade"),  # id = line number
        Problem("9", "Q3?", "2.5", "r", [Step(**STEP)], source=path)]
    assert [p.id for p in load_problems(path, subset=2)] == ["a", "3"]


@pytest.mark.parametrize(("row", "field", "message"), [
    ({"answer": "1", "reasoning": "r"}, "question", "missing"),
    ({"question": None, "answer": "1", "reasoning": "r"}, "question", "missing"),
    ({"question": 5, "answer": "1", "reasoning": "r"}, "question",
     "expected a string, got a number"),
    ({"question": "  ", "answer": "1", "reasoning": "r"}, "question", "must not be empty"),
    ({"question": "q", "reasoning": "r"}, "answer", "missing"),
    ({"question": "q", "answer": [1], "reasoning": "r"}, "answer",
     "expected a string or a number, got an array"),
    ({"question": "q", "answer": True, "reasoning": "r"}, "answer", "got a boolean"),
    ({"id": 1.5, "question": "q", "answer": "1", "reasoning": "r"}, "id",
     "expected a string or an integer"),
    ({"question": "q", "answer": "1", "reasoning": ["r"]}, "reasoning", "expected a string"),
    ({"question": "q", "answer": "1"}, "reasoning", "no teacher trace"),
    ({"question": "q", "answer": "1", "steps": "s"}, "steps", "expected an array of steps"),
    ({"question": "q", "answer": "1", "steps": []}, "steps", "must not be empty"),
    ({"question": "q", "answer": "1", "steps": [STEP, "s"]}, "steps[1]", "expected an object"),
    ({"question": "q", "answer": "1", "steps": [{"meta": "m", "answer": "1"}]},
     "steps[0].query", "missing"),
    ({"question": "q", "answer": "1", "steps": [dict(STEP, answer={})]}, "steps[0].answer",
     "expected a string or a number, got an object"),
    ({"question": "q", "answer": "1", "reasoning": "r", "source": 3}, "source",
     "expected a string"),
    ({"question": "q", "answer": "3+4 = 7\nso 7", "reasoning": "r"}, "answer",
     "expected the final answer alone"),
    ({"question": "q", "answer": "3+4 = 7\n####", "reasoning": "r"}, "answer",
     "no final answer after '####'"),
    ({"question": "q", "answer": "3+4 = 7\n#### 7\nThanks!", "reasoning": "r"}, "answer",
     "a GSM8K solution whose last line is '#### N'"),
])
def test_jsonl_bad_line_names_file_line_and_field(tmp_path, row, field, message):
    good = {"id": "ok", "question": "q", "answer": "1", "reasoning": "r"}
    path = write_lines(tmp_path / "p.jsonl", [good, row])
    with pytest.raises(InputError, match=message) as error:
        load_problems(path)
    assert_names(error, path, 2, field)


def test_jsonl_answer_as_a_gsm8k_solution(tmp_path):
    """GSM8K's own format: the answer is the number after '####'; the solution before it is
    the teacher trace unless the line gives one."""
    solution = "She has 3*4=<<3*4=12>>12 apples.\nThen 12+3=<<12+3=15>>15.\n#### 15"
    path = write_lines(tmp_path / "p.jsonl", [
        {"id": "a", "question": "Q?", "answer": solution},
        {"id": "b", "question": "Q?", "answer": solution, "reasoning": "own"},
        {"id": "c", "question": "Q?", "answer": solution, "steps": [STEP]},
        {"id": "d", "question": "Q?", "answer": " #### 15 "}])
    loaded = load_problems(path, require_trace=False)
    assert [(p.answer, p.reasoning, p.steps) for p in loaded] == [
        ("15", "She has 3*4=<<3*4=12>>12 apples.\nThen 12+3=<<12+3=15>>15.", None),
        ("15", "own", None), ("15", None, [Step(**STEP)]), ("15", None, None)]
    with pytest.raises(InputError, match="no teacher trace") as error:
        load_problems(path)  # "#### 15" alone is an answer without a trace
    assert_names(error, path, 4, "reasoning")
    # The solution is a trace as training requires one.
    assert [p.reasoning for p in load_problems(path, subset=3)] == [
        loaded[0].reasoning, "own", None]


def test_jsonl_duplicate_id(tmp_path):
    row = {"id": "x", "question": "q", "answer": "1", "reasoning": "r"}
    path = write_lines(tmp_path / "p.jsonl", [row, row])
    with pytest.raises(InputError, match=r"duplicate id 'x' \(first on line 1\)") as error:
        load_problems(path)
    assert_names(error, path, 2, "id")


def test_jsonl_explicit_id_clashing_with_a_line_number(tmp_path):
    path = write_lines(tmp_path / "p.jsonl", [
        {"id": "2", "question": "q", "answer": "1", "reasoning": "r"},
        {"question": "q", "answer": "1", "reasoning": "r"}])
    with pytest.raises(InputError, match="duplicate id '2'") as error:
        load_problems(path)
    assert_names(error, path, 2, "id")


def test_jsonl_broken_json_names_file_and_line(tmp_path):
    path = write_lines(tmp_path / "p.jsonl", [{"question": "q", "answer": "1", "reasoning": "r"},
                                              '{"question": '])
    with pytest.raises(InputError, match="not valid JSON") as error:
        load_problems(path)
    assert f"{path}:2:" in str(error.value)


def test_missing_file_is_named(tmp_path):
    missing = str(tmp_path / "nope.jsonl")
    with pytest.raises(RlkdError, match="nope.jsonl"):
        load_problems(missing)
    with pytest.raises(RlkdError, match="teacher.jsonl"):
        load_problems("synthetic", subset=1, teacher=tmp_path / "teacher.jsonl")


# --- teacher file ------------------------------------------------------------------------------

def test_teacher_file_supplies_traces_by_id(tmp_path):
    problems = write_lines(tmp_path / "p.jsonl", [
        {"question": "Q1?", "answer": "1"},                     # id "1": the line number
        {"id": "b", "question": "Q2?", "answer": "2", "reasoning": "own"},
        {"id": "c", "question": "Q3?", "answer": "3", "reasoning": "kept"}])
    teacher = write_lines(tmp_path / "t.jsonl", [
        {"id": 1, "reasoning": "from teacher"},
        {"id": "b", "steps": [STEP]},
        {"id": "unused", "reasoning": "extra entries are fine"}])
    loaded = load_problems(problems, teacher=teacher)
    assert [(p.reasoning, p.steps) for p in loaded] == [
        ("from teacher", None), (None, [Step(**STEP)]), ("kept", None)]


def test_teacher_file_replaces_synthetic_traces(tmp_path):
    teacher = write_lines(tmp_path / "t.jsonl", [{"id": "syn-train-000001", "reasoning": "mine"}])
    first, second = load_problems("synthetic", subset=2, teacher=teacher)
    assert first.steps and (second.reasoning, second.steps) == ("mine", None)


def test_problem_missing_from_teacher_file(tmp_path):
    problems = write_lines(tmp_path / "p.jsonl", [
        {"id": "a", "question": "q", "answer": "1"}, {"id": "b", "question": "q", "answer": "1"}])
    teacher = write_lines(tmp_path / "t.jsonl", [{"id": "a", "reasoning": "r"}])
    with pytest.raises(InputError, match=r"t\.jsonl has no id 'b'") as error:
        load_problems(problems, teacher=teacher)
    assert_names(error, problems, 2, "id")


def test_subset_only_needs_traces_for_the_problems_kept(tmp_path):
    problems = write_lines(tmp_path / "p.jsonl", [
        {"id": "a", "question": "q", "answer": "1"}, {"id": "b", "question": "q", "answer": "1"}])
    teacher = write_lines(tmp_path / "t.jsonl", [{"id": "a", "reasoning": "r"}])
    assert [p.id for p in load_problems(problems, subset=1, teacher=teacher)] == ["a"]


@pytest.mark.parametrize(("row", "field", "message"), [
    ({"reasoning": "r"}, "id", "missing"),
    ({"id": "a", "reasoning": "r"}, "id", "duplicate id 'a'"),
    ({"id": "b"}, "reasoning", "needs 'reasoning' \\(text\\) or 'steps'"),
    ({"id": "b", "steps": [{"meta": "m", "query": "q"}]}, "steps[0].answer", "missing"),
    ({"id": "b", "question": 5, "reasoning": "r"}, "question", "expected a string, got a number"),
    ({"id": "b", "question": "", "reasoning": "r"}, "question", "must not be empty"),
])
def test_teacher_file_bad_line_names_file_line_and_field(tmp_path, row, field, message):
    problems = write_lines(tmp_path / "p.jsonl", [{"id": "a", "question": "q", "answer": "1"}])
    teacher = write_lines(tmp_path / "t.jsonl", [{"id": "a", "reasoning": "r"}, row])
    with pytest.raises(InputError, match=message) as error:
        load_problems(problems, teacher=teacher)
    assert_names(error, teacher, 2, field)


def test_teacher_file_for_other_problems_is_refused_where_its_questions_differ(tmp_path):
    # A teacher file made with seed 0 has the ids of seed 1's problems, not their questions.
    made_for = load_problems("synthetic", subset=2, seed=0)
    teacher = write_lines(tmp_path / "t.jsonl", [
        {"id": p.id, "question": p.question, "reasoning": "r"} for p in made_for])
    with pytest.raises(InputError, match="another question here than in the data") as error:
        load_problems("synthetic", subset=2, seed=1, teacher=teacher)
    assert_names(error, teacher, 1, "question")
    # Its own problems load, whatever the whitespace of the questions.
    spaced = write_lines(tmp_path / "spaced.jsonl", [
        {"id": p.id, "question": "  " + p.question.replace(" ", "\n "), "reasoning": "r"}
        for p in made_for])
    assert [p.reasoning for p in load_problems("synthetic", subset=2, seed=0,
                                               teacher=spaced)] == ["r", "r"]


def test_text_with_half_a_surrogate_pair_is_refused_with_its_field(tmp_path):
    problems = write_lines(tmp_path / "p.jsonl", [
        '{"id": "a", "question": "q \\ud83d\\ude00", "answer": "5"}',  # a whole emoji: fine
        '{"id": "b", "question": "q", "answer": "5", "reasoning": "cut \\ud83d"}'])
    with pytest.raises(InputError, match="half of a UTF-16 surrogate pair") as error:
        load_problems(problems)
    assert_names(error, problems, 2, "reasoning")


def test_teacher_file_matching_no_problem(tmp_path):
    teacher = write_lines(tmp_path / "t.jsonl", [{"id": 0, "reasoning": "r"}])
    with pytest.raises(InputError, match="no id in the teacher file matches") as error:
        load_problems("synthetic", subset=2, teacher=teacher)
    assert teacher in str(error.value) and "field 'id'" in str(error.value)


# --- writing and rows --------------------------------------------------------------------------

def test_written_file_loads_back_the_same(tmp_path):
    problems = load_problems("synthetic", subset=20) + [
        Problem("r-only", "Q?", "1", "reasoning only", None, source="x"),
        Problem("s-only", "Q?", "2", None, [Step("m", "q", "2")], source="y")]
    path = str(tmp_path / "out.jsonl")
    write_problems_jsonl(path, problems)
    assert load_problems(path) == problems


def test_rows_for_trl():
    problems = [Problem("p1", "How many?", "12", "3*4 = 12", [Step(**STEP)], source="s"),
                Problem("p2", "And now?", "3", None, None, source="s")]
    first, second = problems_to_rows(problems, "Think, then answer.")
    assert first == {
        "prompt": [{"role": "system", "content": "Think, then answer."},
                   {"role": "user", "content": "How many?"}],
        "answer": "12", "problem_id": "p1", "teacher_reasoning": "3*4 = 12",
        "teacher_steps": json.dumps([STEP])}
    assert json.loads(first["teacher_steps"]) == [STEP]
    assert (second["teacher_reasoning"], second["teacher_steps"]) == ("", "")
