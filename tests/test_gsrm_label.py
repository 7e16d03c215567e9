"""`rlkd-lite gsrm label`: labels from the rules decomposer, from a real loopback HTTP server
speaking the chat-completions protocol, and from a user's file; rejects and resumption."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from chat_server import ChatServer, Reply, last_user_message
from typer.testing import CliRunner

from rlkd_lite.cli import app
from rlkd_lite.data.problems import load_problems
from rlkd_lite.data.resumable import ResumableOutput
from rlkd_lite.errors import InputError
from rlkd_lite.structure.decomposers import RulesDecomposer
from rlkd_lite.structure.steps import Step, render_steps
from rlkd_lite.train.gsrm import label_from_file, label_with_rules, read_label_examples

SECRET = "sk-test-do-not-print-4242"


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def cli(*args: str):
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split())


# ---------------------------------------------------------------------------------------------
# rules

def test_rules_labels_every_synthetic_problem(tmp_path):
    problems = load_problems("synthetic", subset=12)
    out = ResumableOutput(tmp_path / "labels.jsonl")
    summary = label_with_rules(problems, out)
    assert summary["accepted"] == 12 and summary["rejected"] == {}
    rows = read_lines(tmp_path / "labels.jsonl")
    assert [row["id"] for row in rows] == [p.id for p in problems]
    rules = RulesDecomposer()
    for row, problem in zip(rows, problems):
        assert set(row) == {"id", "question", "reasoning", "steps", "source"}
        assert row["source"] == "rules" and row["reasoning"] == problem.reasoning
        assert [Step(**s) for s in row["steps"]] == rules.decompose(problem.reasoning)
    # The file reads back as training examples.
    examples = read_label_examples(tmp_path / "labels.jsonl")
    assert [e.id for e in examples] == [p.id for p in problems]


def test_rules_rejects_traces_it_cannot_label(tmp_path):
    good, no_math, steps_only = load_problems("synthetic", subset=3)
    no_math = replace(no_math, reasoning="She thinks about it and decides to buy them all.")
    steps_only = replace(steps_only, reasoning=None)
    out = ResumableOutput(tmp_path / "labels.jsonl")
    summary = label_with_rules([good, no_math, steps_only], out)
    assert summary["accepted"] == 1
    assert summary["rejected"] == {"no_steps": 1, "no_reasoning": 1}
    rejects = {row["id"]: row["reason"] for row in read_lines(tmp_path / "labels.rejects.jsonl")}
    assert rejects == {no_math.id: "no_steps", steps_only.id: "no_reasoning"}


def test_rules_labelling_resumes_after_a_torn_line(tmp_path):
    problems = load_problems("synthetic", subset=6)
    path = tmp_path / "labels.jsonl"
    label_with_rules(problems[:4], ResumableOutput(path))
    # A crash in the middle of writing the fourth line:
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:3]) + lines[3][:25])
    out = ResumableOutput(path)
    assert out.torn_lines == 1
    summary = label_with_rules(problems, out)
    assert summary["skipped"] == 3 and summary["accepted"] == 3
    assert summary["torn_lines_removed"] == 1
    # The torn line is gone (the file reads strictly again) and its item was redone: each once.
    ids = [row["id"] for row in read_lines(path)]
    assert sorted(ids) == sorted(p.id for p in problems)


def test_a_file_that_is_not_this_jobs_output_is_refused_and_left_as_it_was(tmp_path):
    notes = tmp_path / "notes.json"
    notes.write_text('{\n  "important": "user data"\n}\n')
    code, output = cli("gsrm", "label", "--from", "rules", "--data", "synthetic", "--subset", "2",
                       "--output", str(notes))
    assert code == 1
    assert f"{notes}:1: not valid JSON" in output and "choose another output file" in output
    assert notes.read_text() == '{\n  "important": "user data"\n}\n'
    # A one-line file that is not a record of this job, nor one cut short, is kept too.
    for foreign in ('[{"id": "a", "question": "q?"}]\n', "my important notes\n",
                    "{'id': 'x1', 'question': 'my notes'}\n{'id': 'x2', 'question': 'more'}\n"):
        notes.write_text(foreign)
        code, output = cli("gsrm", "label", "--from", "rules", "--data", "synthetic",
                           "--subset", "2", "--output", str(notes))
        assert code == 1 and notes.read_text() == foreign, output


def test_labelling_into_an_output_made_for_other_problems_is_refused(tmp_path):
    path = tmp_path / "labels.jsonl"
    label_with_rules(load_problems("synthetic", subset=3, seed=0), ResumableOutput(path))
    other_seed = load_problems("synthetic", subset=3, seed=1)  # the same ids, other questions
    with pytest.raises(InputError, match="written for another question") as error:
        label_with_rules(other_seed, ResumableOutput(path))
    assert f"{path}:1:" in str(error.value) and "field 'question'" in str(error.value)
    assert len(read_lines(path)) == 3  # nothing written


def test_an_output_holding_only_a_blank_line_counts_as_empty(tmp_path):
    (tmp_path / "labels.jsonl").write_text("\n")
    code, output = cli("gsrm", "label", "--from", "rules", "--data", "synthetic", "--subset", "2",
                       "--output", str(tmp_path / "labels.jsonl"))
    assert code == 0, output
    assert len(read_lines(tmp_path / "labels.jsonl")) == 2


def test_label_command_from_rules(tmp_path):
    code, output = cli("gsrm", "label", "--from", "rules", "--data", "synthetic", "--subset", "5",
                       "--output", str(tmp_path / "labels.jsonl"))
    assert code == 0, output
    assert "accepted │ 5" in output
    assert len(read_lines(tmp_path / "labels.jsonl")) == 5
    code, output = cli("gsrm", "label", "--from", "rules", "--data", "synthetic", "--subset", "5",
                       "--output", str(tmp_path / "labels.jsonl"))
    assert code == 0 and "skipped (done by an earlier run) │ 5" in output
    assert len(read_lines(tmp_path / "labels.jsonl")) == 5


def test_label_command_rejects_an_unknown_source(tmp_path):
    code, output = cli("gsrm", "label", "--from", "magic", "--output", str(tmp_path / "x.jsonl"))
    assert code == 1 and "expected rules, api or a path to a .jsonl file" in output


# ---------------------------------------------------------------------------------------------
# api

def test_label_from_api_accepts_good_replies_and_records_every_failure(tmp_path, monkeypatch):
    """Seven problems, each meeting the server in a different mood; then a second run."""
    moods = ("good", "good-too", "prose", "500-once", "500-always", "slow-once", "not-json")
    problems = load_problems("synthetic", subset=len(moods))
    by_mood = {mood: problem for mood, problem in zip(moods, problems)}
    id_of = {mood: problem.id for mood, problem in by_mood.items()}
    healed = False  # on the second run the server has recovered

    def respond(request, attempt):
        user = last_user_message(request)
        mood = next(mood for mood, problem in by_mood.items() if problem.question in user)
        steps = render_steps(by_mood[mood].steps)
        if healed or mood.startswith("good"):
            return Reply(steps)
        if mood == "prose":
            return Reply("I would rather not split this into steps.")
        if mood == "500-once":
            return Reply(status=500, body=b'{"error": {"message": "overloaded"}}') \
                if attempt == 1 else Reply(steps)
        if mood == "500-always":
            return Reply(status=503, body=b"upstream down")
        if mood == "slow-once":
            return Reply(steps, delay_s=1.5 if attempt == 1 else 0.0)
        return Reply(body=b"<html>not json</html>")

    problems_file = tmp_path / "problems.jsonl"
    from rlkd_lite.data.problems import write_problems_jsonl

    write_problems_jsonl(problems_file, problems)
    monkeypatch.setenv("RLKD_TEST_API_KEY", SECRET)
    output = tmp_path / "labels.jsonl"
    with ChatServer(respond) as server:
        args = ("gsrm", "label", "--from", "api", "--data", str(problems_file),
                "--output", str(output), "--api-base", server.base_url,
                "--api-model", "decomposer-x", "--api-key-env", "RLKD_TEST_API_KEY",
                "--timeout", "0.5", "--retries", "2", "--backoff", "0.01", "--concurrency", "3")
        code, printed = cli(*args)
        assert code == 0, printed
        accepted = {row["id"]: row for row in read_lines(output)}
        assert set(accepted) == {id_of[m] for m in ("good", "good-too", "500-once", "slow-once")}
        for row in accepted.values():
            problem = next(p for p in problems if p.id == row["id"])
            assert [Step(**s) for s in row["steps"]] == list(problem.steps)
            assert row["source"] == "api:decomposer-x"
        rejects = {row["id"]: row for row in read_lines(tmp_path / "labels.rejects.jsonl")}
        assert {i: r["reason"] for i, r in rejects.items()} == {
            id_of["prose"]: "unparseable", id_of["500-always"]: "request_failed",
            id_of["not-json"]: "request_failed"}
        assert "HTTP 503" in rejects[id_of["500-always"]]["detail"]
        assert "3 attempts" in rejects[id_of["500-always"]]["detail"]
        assert "malformed response" in rejects[id_of["not-json"]]["detail"]
        assert rejects[id_of["prose"]]["reply"].startswith("I would rather not")
        assert "accepted │ 4" in printed and "rejected: request_failed │ 2" in printed
        assert "rejected: unparseable │ 1" in printed
        # The key travels as a bearer token and nowhere else.
        assert {auth for _, auth, _ in server.requests} == {f"Bearer {SECRET}"}
        assert SECRET not in printed
        assert all(SECRET not in p.read_text() for p in tmp_path.glob("*.jsonl"))
        # Requests are the few-shot decomposition prompt, greedy.
        _, _, body = server.requests[0]
        assert body["model"] == "decomposer-x" and body["temperature"] == 0.0
        assert len(body["messages"]) == 6  # system, two worked examples, the request

        # Second run: decided items are skipped; only failed requests are tried again.
        healed = True
        before = len(server.requests)
        code, printed = cli(*args)
        assert code == 0, printed
        assert len(server.requests) - before == 2
        assert "skipped (done by an earlier run) │ 5" in printed and "accepted │ 2" in printed
    assert len(read_lines(output)) == 6  # every id once; "prose" stays rejected


def test_label_from_api_rejects_a_reply_that_max_tokens_cut_off(tmp_path):
    """A reply that max_tokens ended is rejected with the limit named, so that the user knows
    to raise it, even when the steps it got to parse: its last ones may be missing, and an
    adapter trained on it would learn to stop early. So is a reasoning model's reply cut off
    while thinking (vLLM sends content null), not a failed request that every re-run asks
    again. A reply that ended by itself without steps is unparseable, as before."""
    cut_short, cut_late, thinking, prose = load_problems("synthetic", subset=4)

    def respond(request, attempt):
        user = last_user_message(request)
        if cut_short.question in user:
            return Reply("First I need the number of apples, which is", finish_reason="length")
        if cut_late.question in user:
            return Reply(render_steps(cut_late.steps), finish_reason="length")
        if thinking.question in user:
            return Reply(message_fields={"content": None, "reasoning_content": "Hmm, first"},
                         finish_reason="length")
        return Reply("I would rather not split this into steps.")

    output = tmp_path / "labels.jsonl"
    with ChatServer(respond) as server:
        code, printed = cli("gsrm", "label", "--from", "api", "--subset", "4", "--output",
                            str(output), "--api-base", server.base_url, "--api-model", "m",
                            "--max-tokens", "64")
    assert code == 1, printed  # nothing accepted
    assert not output.is_file() or not read_lines(output)
    rejects = {row["id"]: row for row in read_lines(tmp_path / "labels.rejects.jsonl")}
    cut_detail = ("the reply was cut off at max_tokens=64 (raise --max-tokens and re-run with "
                  "--retry-rejected)")
    assert {i: (r["reason"], r["detail"]) for i, r in rejects.items()} == {
        cut_short.id: ("cut_off", cut_detail), cut_late.id: ("cut_off", cut_detail),
        thinking.id: ("cut_off", cut_detail),
        prose.id: ("unparseable", "the reply has no tagged steps")}
    assert rejects[cut_short.id]["reply"].startswith("First I need")


def test_label_from_api_stops_on_a_bad_key(tmp_path, monkeypatch):
    monkeypatch.setenv("RLKD_TEST_API_KEY", SECRET)

    def respond(request, attempt):
        return Reply(status=401, body=b'{"error": {"message": "invalid api key"}}')

    with ChatServer(respond) as server:
        code, output = cli("gsrm", "label", "--from", "api", "--data", "synthetic",
                           "--subset", "3", "--output", str(tmp_path / "labels.jsonl"),
                           "--api-base", server.base_url, "--api-model", "m",
                           "--api-key-env", "RLKD_TEST_API_KEY", "--backoff", "0.01")
        assert len(server.requests) <= 3  # no retries of a fatal status
    assert code == 1
    assert "HTTP 401" in output and "$RLKD_TEST_API_KEY" in output and SECRET not in output


def test_label_from_api_needs_a_base_url(tmp_path):
    code, output = cli("gsrm", "label", "--from", "api", "--output", str(tmp_path / "x.jsonl"))
    assert code == 1 and "--api-base" in output


# ---------------------------------------------------------------------------------------------
# the user's file

GOOD_STEPS = [{"meta": "Start with the total.", "query": "What is 2+3?", "answer": "5"}]


def test_label_from_file_keeps_valid_examples_and_rejects_the_rest(tmp_path):
    tagged = render_steps([Step("Start with the total.", "What is 2+3?", "5")])
    lines = [
        {"id": "a", "question": "Q?", "reasoning": "2+3 = 5", "steps": GOOD_STEPS},
        {"id": "b", "question": "Q?", "reasoning": "2+3 = 5", "steps": tagged},
        "not json at all",
        {"id": "c", "question": "Q?", "steps": GOOD_STEPS},
        {"id": "d", "question": "Q?", "reasoning": "r", "steps": "no tags in here"},
        {"id": "e", "question": "Q?", "reasoning": "r", "steps": "[Sub-problem 1]: 2+3?"},
        {"id": "a", "question": "Q?", "reasoning": "r", "steps": GOOD_STEPS},
        {"question": "Q?", "reasoning": "r", "steps": GOOD_STEPS, "source": "mine"},
    ]
    path = tmp_path / "mine.jsonl"
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n"
                            for line in lines))
    out = ResumableOutput(tmp_path / "labels.jsonl")
    summary = label_from_file(path, out)
    assert summary["accepted"] == 3
    assert summary["rejected"] == {"invalid": 3, "empty_part": 1, "duplicate_id": 1}
    accepted = {row["id"]: row for row in read_lines(tmp_path / "labels.jsonl")}
    assert set(accepted) == {"a", "b", "8"}  # no id: the line number
    assert accepted["b"]["steps"] == GOOD_STEPS and accepted["a"]["source"] == str(path)
    assert accepted["8"]["source"] == "mine"
    details = [row["detail"] for row in read_lines(tmp_path / "labels.rejects.jsonl")]
    assert any(":3:" in d and "not valid JSON" in d for d in details)
    assert any(":4:" in d and "'reasoning'" in d for d in details)
    assert any(":5:" in d and "without step tags" in d for d in details)
    assert any("step 1 has an empty meta-reasoning" in d for d in details)


def test_read_label_examples_is_strict(tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_text(json.dumps({"id": 1, "question": "Q?", "reasoning": "r",
                                "steps": GOOD_STEPS}) + "\n"
                    + json.dumps({"id": 2, "question": "Q?", "reasoning": "r",
                                  "steps": [{"meta": "m", "query": "", "answer": "5"}]}) + "\n")
    with pytest.raises(InputError) as error:
        read_label_examples(path)
    assert error.value.line == 2 and error.value.field == "steps[0].query"


def test_label_from_api_exits_1_when_every_request_failed(tmp_path):
    """Nothing accepted and some requests failed: exit 1 after the summary. Items rejected for
    other reasons (here: an unparseable reply) do not make a run that accepted nothing fail."""
    problems = load_problems("synthetic", subset=2)

    def respond(request, attempt):
        if problems[0].question in last_user_message(request):
            return Reply("I would rather not split this into steps.")
        return Reply(status=503, body=b"upstream down")

    output = tmp_path / "labels.jsonl"
    with ChatServer(respond) as server:
        code, printed = cli("gsrm", "label", "--from", "api", "--subset", "2", "--output",
                            str(output), "--api-base", server.base_url, "--api-model", "m",
                            "--retries", "0")
    assert code == 1
    assert "rejected: request_failed │ 1" in printed and "rejected: unparseable │ 1" in printed
    assert printed.endswith(
        f"error: nothing accepted: 1 request(s) failed (details in "
        f"{tmp_path / 'labels.rejects.jsonl'}). Check --api-base, --api-model and the server, "
        f"then run again: failed items are retried.")

    # The failed one is retried and now unparseable too: no failure, but the output holds
    # nothing, which is an error too (the other one is skipped as rejected before).
    with ChatServer(lambda request, attempt: Reply("No.")) as server:
        code, printed = cli("gsrm", "label", "--from", "api", "--subset", "2", "--output",
                            str(output), "--api-base", server.base_url, "--api-model", "m")
    assert code == 1 and "rejected: unparseable │ 1" in printed, printed
    assert "of them rejected (--retry-rejected redoes them) │ 1" in printed
    assert printed.endswith(
        f"error: nothing accepted, and {output} holds nothing from an earlier run: rejected "
        f"1 unparseable (details in {tmp_path / 'labels.rejects.jsonl'}); skipped 1 rejected "
        f"by an earlier run (--retry-rejected redoes them)")


# ---------------------------------------------------------------------------------------------
# outputs that cannot be written; runs that leave nothing usable; earlier rejects

def test_an_output_that_is_a_directory_is_refused_up_front(tmp_path):
    folder = tmp_path / "adir"
    folder.mkdir()
    a_file = tmp_path / "afile"
    a_file.write_text("mine\n")
    for output, problem in ((folder, "is a directory"),
                            (a_file / "labels.jsonl", f"cannot be created: {a_file} is a file")):
        code, printed = cli("gsrm", "label", "--from", "rules", "--subset", "2",
                            "--output", str(output))
        assert code == 1 and printed.startswith(f"error: {output}: {problem}"), printed
        assert "Traceback" not in printed
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["adir", "afile"]
    assert a_file.read_text() == "mine\n"
    code, printed = cli("gsrm", "label", "--from", "rules", "--subset", "2", "--output",
                        str(tmp_path / "x.jsonl"), "--rejects", str(tmp_path / "x.jsonl"))
    assert code == 1 and "must differ" in printed, printed


def test_labelling_a_file_of_invalid_lines_only_exits_1(tmp_path):
    """Nothing accepted and nothing from an earlier run: `gsrm label && gsrm train` stops."""
    mine = tmp_path / "mine.jsonl"
    mine.write_text("".join(line + "\n" for line in (
        "not json", '{"id": "a", "question": "a\tb"}', "[1, 2]",
        json.dumps({"id": "b", "question": "Q?"}), json.dumps({"id": "c", "steps": GOOD_STEPS}),
        json.dumps({"id": "d", "question": "Q?", "reasoning": "r", "steps": "no tags"}))))
    output = tmp_path / "labels.jsonl"
    code, printed = cli("gsrm", "label", "--from", str(mine), "--output", str(output))
    assert code == 1 and "rejected: invalid │ 6" in printed, printed
    assert printed.endswith(
        f"error: nothing accepted, and {output} holds nothing from an earlier run: rejected "
        f"6 invalid (details in {tmp_path / 'labels.rejects.jsonl'})")
    # Re-run: the rejected ids are skipped, and the message says how to redo them.
    code, printed = cli("gsrm", "label", "--from", str(mine), "--output", str(output))
    assert code == 1 and printed.endswith(
        "rejected 3 invalid (details in " f"{tmp_path / 'labels.rejects.jsonl'}); skipped 3 "
        "rejected by an earlier run (--retry-rejected redoes them)"), printed


def test_retry_rejected_relabels_a_corrected_file(tmp_path):
    mine = tmp_path / "mine.jsonl"
    good = {"id": "a", "question": "Q?", "reasoning": "2+3 = 5", "steps": GOOD_STEPS}
    mine.write_text(json.dumps(good) + "\n" + json.dumps({**good, "id": "b", "steps": []}) + "\n")
    output = tmp_path / "labels.jsonl"
    args = ("gsrm", "label", "--from", str(mine), "--output", str(output))
    code, printed = cli(*args)
    assert code == 0 and "rejected: invalid │ 1" in printed, printed
    mine.write_text(json.dumps(good) + "\n" + json.dumps({**good, "id": "b"}) + "\n")  # fixed
    code, printed = cli(*args)
    assert code == 0 and "skipped (done by an earlier run) │ 2" in printed, printed
    assert "of them rejected (--retry-rejected redoes them) │ 1" in printed, printed
    code, printed = cli(*args, "--retry-rejected")
    assert code == 0 and "accepted │ 1" in printed and "skipped (done by an earlier run) │ 1" \
        in printed, printed
    assert [row["id"] for row in read_lines(output)] == ["a", "b"]
