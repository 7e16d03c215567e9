"""Problems to train and evaluate on, loaded by a data spec, and their rows for TRL.

Data specs:
- `synthetic`: the offline generator (`rlkd_lite.data.synthetic`); gold steps included.
- `gsm8k`, `gsm8k-subset`: openai/gsm8k (config "main") from the Hugging Face Hub; the human
  worked solution is the teacher trace.
- a path to a `.jsonl` file, one problem per line (the format `write_problems_jsonl` writes):
  `{"id": "p1", "question": "...", "answer": "72", "reasoning": "...", "steps": [{"meta":
  "...", "query": "...", "answer": "..."}], "source": "..."}`. `question` and `answer` (a
  string or a number) are required; `id` (a string or an integer) defaults to the line number;
  the teacher trace is `reasoning` (text), `steps`, or both; other fields are ignored.
  `answer` may also be a GSM8K solution (GSM8K's own format: the worked solution, then a last
  line `#### 72`): the text after its last `####` is the answer and, on a line without
  `reasoning` or `steps`, the text before it is the teacher trace. Any other answer of more
  than one line is refused (it has no final answer to check replies against).

A separate teacher file (`teacher=`), of lines `{"id": ..., "reasoning": ...}` and/or
`"steps"` (and optionally the `question`, checked against the problem's), pairs traces with
problems by id, for any spec; its trace replaces the problem's own.
Every problem must end up with a teacher trace.
"""
from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, replace
from typing import Any

from rlkd_lite.data.answers import last_answer_marker
from rlkd_lite.data.jsonl import (is_integer, is_number, json_type, read_jsonl,
                                  write_jsonl_atomic)
from rlkd_lite.data.synthetic import SPLITS, SyntheticProblem, generate_problems
from rlkd_lite.errors import InputError, RlkdError
from rlkd_lite.structure.steps import Step, steps_to_dicts, steps_to_json

DATA_SPECS = ("synthetic", "gsm8k", "gsm8k-subset")
"""The named data specs; anything else must be a path to a .jsonl file."""
DEFAULT_SUBSET = 256
"""How many problems `synthetic` and `gsm8k-subset` give when no subset is asked for."""
GSM8K_HUB_ID = "openai/gsm8k"


@dataclass(frozen=True)
class Problem:
    """A question with its final answer and the teacher's trace (text, steps, or both)."""

    id: str
    question: str
    answer: str
    reasoning: str | None
    """The teacher's reasoning text (for GSM8K-style sources, without the `#### N` line)."""
    steps: list[Step] | None
    """The teacher's reasoning already split into steps, when the source gives them."""
    source: str
    """Where the problem came from: "synthetic", "gsm8k", or the file it was read from."""


def data_file(spec: str) -> str | None:
    """The JSONL file a data spec names, or None for a built-in source (`DATA_SPECS`); an
    RlkdError for anything else."""
    if spec in DATA_SPECS:
        return None
    if spec.lower().endswith(".jsonl"):
        return spec
    raise RlkdError(f"unknown data {spec!r}; expected one of: {', '.join(DATA_SPECS)}, "
                    f"or a path to a .jsonl file")


def load_problems(spec: str, *, subset: int | None = None, seed: int = 0, split: str = "train",
                  teacher: str | os.PathLike[str] | None = None,
                  require_trace: bool = True) -> list[Problem]:
    """The problems of a data spec (see the module docstring), the first `subset` of them.

    `seed` and `split` choose the synthetic problems; `split` also chooses GSM8K's split. A
    JSONL file has no splits: pass a different file for evaluation. `require_trace` False
    accepts problems without a teacher trace (for generating the traces: `rlkd-lite teach`).
    """
    if split not in SPLITS:
        raise RlkdError(f"unknown split {split!r}; expected one of: {', '.join(SPLITS)}")
    if subset is not None and subset < 1:
        raise RlkdError(f"subset must be at least 1, got {subset}")
    lines: dict[str, int] = {}  # problem id -> line, for errors about JSONL problems
    if data_file(spec) is not None:
        numbered = _read_problem_file(spec)[:subset]
        lines = {problem.id: line for line, problem in numbered}
        problems = [problem for _, problem in numbered]
    elif spec == "synthetic":
        problems = [_from_synthetic(p)
                    for p in generate_problems(subset or DEFAULT_SUBSET, seed=seed, split=split)]
    else:
        limit = subset or (DEFAULT_SUBSET if spec == "gsm8k-subset" else None)
        problems = _load_gsm8k(split, limit)
    if teacher is not None:
        problems = _with_teacher_traces(problems, teacher)
    if require_trace:
        for problem in problems:
            if problem.reasoning is None and problem.steps is None:
                if teacher is None:
                    raise InputError("no teacher trace: give 'reasoning' (text) or 'steps', or a "
                                     "teacher file paired by id", path=spec,
                                     line=lines[problem.id], field="reasoning")
                raise InputError(f"no teacher trace: this line has no 'reasoning' or 'steps', and "
                                 f"teacher file {teacher} has no id {problem.id!r}", path=spec,
                                 line=lines[problem.id], field="id")
    return problems


def split_gsm8k_solution(solution: str) -> tuple[str, str]:
    """Split a GSM8K-style solution into (worked reasoning, final answer) at its answer marker,
    the last `####` followed by a number (`last_answer_marker`: headings stay reasoning)."""
    marker = last_answer_marker(solution)
    if marker is None:
        raise ValueError("no final answer after '####'")
    return solution[:marker].rstrip(), solution[marker + len("####"):].strip()


def problems_to_rows(problems: list[Problem], system_prompt: str) -> list[dict[str, Any]]:
    """Dataset rows for TRL: a conversational prompt plus the columns rewards read.

    Every column has one type in every row ("" for a missing trace), as `datasets` needs;
    teacher steps travel as a JSON string because `datasets` dislikes nested lists of structs.
    """
    return [{"prompt": [{"role": "system", "content": system_prompt},
                        {"role": "user", "content": problem.question}],
             "answer": problem.answer,
             "problem_id": problem.id,
             "teacher_reasoning": problem.reasoning or "",
             "teacher_steps": steps_to_json(problem.steps) if problem.steps else ""}
            for problem in problems]


def write_problems_jsonl(path: str | os.PathLike[str], problems: list[Problem]) -> None:
    """Write problems in the JSONL format `load_problems` reads, atomically."""
    write_jsonl_atomic(path, (_problem_json(problem) for problem in problems))


# ---------------------------------------------------------------------------------------------
# Sources

def _from_synthetic(problem: SyntheticProblem) -> Problem:
    reasoning, _ = split_gsm8k_solution(problem.reasoning)
    return Problem(id=problem.id, question=problem.question, answer=problem.answer,
                   reasoning=reasoning, steps=list(problem.steps), source="synthetic")


def _load_gsm8k(split: str, limit: int | None) -> list[Problem]:
    import datasets  # imported here: heavy, and only this source needs it

    try:
        rows = datasets.load_dataset(GSM8K_HUB_ID, "main", split=split)
    except Exception as exc:  # offline, Hub down, auth, cache: all mean "use local data"
        raise RlkdError(
            f"cannot load {GSM8K_HUB_ID} from the Hugging Face Hub ({type(exc).__name__}: "
            f"{exc}). Without network use an offline source: --data synthetic, or "
            f"--data PATH.jsonl") from exc
    problems = []
    for index, row in enumerate(itertools.islice(rows, limit)):
        try:
            reasoning, answer = split_gsm8k_solution(row["answer"])
        except ValueError as exc:
            raise RlkdError(f"{GSM8K_HUB_ID} {split} row {index}: {exc}") from None
        problems.append(Problem(id=f"gsm8k-{split}-{index:05d}", question=row["question"],
                                answer=answer, reasoning=reasoning, steps=None, source="gsm8k"))
    return problems


def _read_problem_file(path: str) -> list[tuple[int, Problem]]:
    """Every problem of a JSONL file with its line number, validated."""
    numbered: list[tuple[int, Problem]] = []
    first_line: dict[str, int] = {}
    for line, row in read_jsonl(path):
        where = {"path": path, "line": line}
        problem_id = id_field(row["id"], where) if row.get("id") is not None else str(line)
        if problem_id in first_line:
            raise InputError(f"duplicate id {problem_id!r} (first on line "
                             f"{first_line[problem_id]})", field="id", **where)
        first_line[problem_id] = line
        reasoning, steps = _trace(row, where)
        question = text_field(required_field(row, "question", where), "question", where)
        answer, solution = _answer(required_field(row, "answer", where), where)
        if reasoning is None and steps is None:
            reasoning = solution  # GSM8K's worked solution is its teacher trace
        source = row.get("source")
        numbered.append((line, Problem(
            id=problem_id, question=question, answer=answer, reasoning=reasoning, steps=steps,
            source=path if source is None else text_field(source, "source", where))))
    return numbered


def _answer(value: Any, where: dict[str, Any]) -> tuple[str, str | None]:
    """The final answer of an `answer` field, and the worked solution before it when the field
    is a GSM8K solution (None when it is the answer alone)."""
    answer = scalar_text_field(value, "answer", where)
    solution = None
    if "####" in answer:
        try:
            solution, answer = split_gsm8k_solution(answer)
        except ValueError as exc:
            raise InputError(str(exc), field="answer", **where) from None
    if "\n" in answer:
        # A worked solution without GSM8K's closing line, or text after it: no final answer to
        # compare replies with.
        raise InputError("expected the final answer alone (e.g. \"72\"), or a GSM8K solution "
                         "whose last line is '#### N'", field="answer", **where)
    return answer, solution or None


def _with_teacher_traces(problems: list[Problem],
                         teacher: str | os.PathLike[str]) -> list[Problem]:
    """`problems` with the traces of a teacher file (paired by id) in place of their own."""
    path = str(teacher)
    traces: dict[str, tuple[str | None, list[Step] | None]] = {}
    questions: dict[str, str | None] = {}
    first_line: dict[str, int] = {}
    for line, row in read_jsonl(path):
        where = {"path": path, "line": line}
        teacher_id = id_field(required_field(row, "id", where), where)
        if teacher_id in first_line:
            raise InputError(f"duplicate id {teacher_id!r} (first on line "
                             f"{first_line[teacher_id]})", field="id", **where)
        first_line[teacher_id] = line
        trace = _trace(row, where)
        if trace == (None, None):
            raise InputError("a teacher line needs 'reasoning' (text) or 'steps'",
                             field="reasoning", **where)
        traces[teacher_id] = trace
        question = row.get("question")
        questions[teacher_id] = (None if question is None
                                 else text_field(question, "question", where))
    if problems and not any(problem.id in traces for problem in problems):
        # Most likely ids from another numbering; better said than silently ignored.
        raise InputError(f"no id in the teacher file matches a problem id (problem ids look "
                         f"like {problems[0].id!r})", path=path, field="id")
    for problem in problems:
        # Ids repeat across data sources and seeds (synthetic ids are positions): a trace is
        # only this problem's if its line, where it says, asks the same question.
        question = questions.get(problem.id)
        if question is not None and not same_question(question, problem.question):
            raise InputError(f"id {problem.id!r} has another question here than in the data "
                             f"({question[:60]!r} vs {problem.question[:60]!r}): the teacher "
                             f"file was made for other problems (another --data, --subset or "
                             f"--seed?)", path=path, line=first_line[problem.id],
                             field="question")
    return [replace(problem, reasoning=traces[problem.id][0], steps=traces[problem.id][1])
            if problem.id in traces else problem for problem in problems]


def question_key(question: str) -> str:
    """A question as compared everywhere: case and spacing aside."""
    return " ".join(question.casefold().split())


def same_question(a: str, b: str) -> bool:
    """The same question, case and spacing aside."""
    return question_key(a) == question_key(b)


# ---------------------------------------------------------------------------------------------
# Field validation (errors name file, line and field)

def required_field(row: dict[str, Any], key: str, where: dict[str, Any],
                   field: str | None = None) -> Any:
    """`row[key]`; `field` names it in errors when it is nested (default: the key)."""
    if row.get(key) is None:
        raise InputError("missing (or null)", field=field or key, **where)
    return row[key]


def text_field(value: Any, field: str, where: dict[str, Any]) -> str:
    if not isinstance(value, str):
        raise InputError(f"expected a string, got {json_type(value)}", field=field, **where)
    if not value.strip():
        raise InputError("must not be empty", field=field, **where)
    return value


def scalar_text_field(value: Any, field: str, where: dict[str, Any]) -> str:
    """A string, or a number as text (answers are often written as JSON numbers)."""
    if is_number(value):
        return str(value)
    if not isinstance(value, str):
        raise InputError(f"expected a string or a number, got {json_type(value)}",
                         field=field, **where)
    return text_field(value, field, where).strip()


def id_field(value: Any, where: dict[str, Any]) -> str:
    if is_integer(value):
        return str(value)
    if not isinstance(value, str):
        raise InputError(f"expected a string or an integer, got {json_type(value)}",
                         field="id", **where)
    return text_field(value, "id", where)


def _trace(row: dict[str, Any], where: dict[str, Any]) -> tuple[str | None, list[Step] | None]:
    """The (reasoning, steps) of a line; either may be None."""
    reasoning = row.get("reasoning")
    if reasoning is not None:
        reasoning = text_field(reasoning, "reasoning", where)
    steps = row.get("steps")
    return reasoning, None if steps is None else steps_field(steps, where)


def steps_field(value: Any, where: dict[str, Any], *, allow_empty: bool = False) -> list[Step]:
    """A `steps` array of {meta, query, answer}. Empty is an error for a teacher trace, but a
    valid student trace (one that produced no steps: it scores 0)."""
    if not isinstance(value, list):
        raise InputError(f"expected an array of steps, got {json_type(value)}",
                         field="steps", **where)
    if not value and not allow_empty:
        raise InputError("must not be empty (leave it out instead)", field="steps", **where)
    steps = []
    for index, item in enumerate(value):
        field = f"steps[{index}]"
        if not isinstance(item, dict):
            raise InputError(f"expected an object with meta, query and answer, got "
                             f"{json_type(item)}", field=field, **where)
        parts = {key: required_field(item, key, where, f"{field}.{key}")
                 for key in ("meta", "query", "answer")}
        steps.append(Step(meta=text_field(parts["meta"], f"{field}.meta", where),
                          query=text_field(parts["query"], f"{field}.query", where),
                          answer=scalar_text_field(parts["answer"], f"{field}.answer", where)))
    return steps


def _problem_json(problem: Problem) -> dict[str, Any]:
    row: dict[str, Any] = {"id": problem.id, "question": problem.question,
                           "answer": problem.answer}
    if problem.reasoning is not None:
        row["reasoning"] = problem.reasoning
    if problem.steps is not None:
        row["steps"] = steps_to_dicts(problem.steps)
    row["source"] = problem.source
    return row
