"""`rlkd-lite teach`: teacher traces from a real loopback chat-completions server and from a
tiny local model; first right trace kept, wrong ones and failed requests recorded, resumable."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from chat_server import ChatServer, Reply, last_user_message
from typer.testing import CliRunner

from rlkd_lite.cli import app
from rlkd_lite.data.problems import load_problems, write_problems_jsonl
from rlkd_lite.data.teacher import TEACHER_SYSTEM_PROMPT, trace_reasoning

SECRET = "sk-teach-secret-777"


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def cli(*args: str):
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split())


def test_trace_reasoning_drops_the_answer_line_and_think_tags():
    assert trace_reasoning("2+3 = 5 apples.\n#### 5") == "2+3 = 5 apples."
    assert trace_reasoning("<think>\n2+3 = 5\n</think>\nThe answer is #### 5") == "2+3 = 5"
    assert trace_reasoning("2+3 = 5, so the answer is 5.") == "2+3 = 5, so the answer is 5."
    # Markdown headings are reasoning, not the answer line.
    headed = "#### Step 1: Clips\nShe sold 48/2 = 24.\n#### Step 2: Total\n48+24 = 72"
    assert trace_reasoning(f"{headed}\nThe answer is 72.") == f"{headed}\nThe answer is 72."
    assert trace_reasoning(f"{headed}\n#### 72") == headed


@pytest.fixture
def problems_file(tmp_path):
    """Six problems, in a JSONL file with question and answer only (no traces yet)."""
    problems = load_problems("synthetic", subset=6)
    path = tmp_path / "problems.jsonl"
    path.write_text("".join(json.dumps({"id": p.id, "question": p.question, "answer": p.answer})
                            + "\n" for p in problems))
    return path, problems


def test_teach_from_api_keeps_the_first_right_trace(problems_file, tmp_path, monkeypatch):
    path, problems = problems_file
    moods = ("right", "wrong-then-right", "always-wrong", "500-once", "slow-once", "not-json")
    by_mood = dict(zip(moods, problems))
    healed = False

    def respond(request, attempt):
        question = last_user_message(request)
        mood = next(m for m, p in by_mood.items() if p.question == question)
        problem = by_mood[mood]
        right = Reply(f"{problem.reasoning}\n#### {problem.answer}")
        wrong = Reply(f"Let me guess.\n#### {int(float(problem.answer)) + 1}")
        if healed or mood == "right":
            return right
        if mood == "wrong-then-right":
            return wrong if attempt == 1 else right
        if mood == "always-wrong":
            return wrong if attempt % 2 else Reply("I am not sure, sorry.")
        if mood == "500-once":
            return Reply(status=500, body=b"oops") if attempt == 1 else right
        if mood == "slow-once":
            return Reply(right.content, delay_s=1.5 if attempt == 1 else 0.0)
        return Reply(body=b'{"choices": []}')

    monkeypatch.setenv("RLKD_TEACH_KEY", SECRET)
    output = tmp_path / "teacher.jsonl"
    with ChatServer(respond) as server:
        args = ("teach", "--data", str(path), "--output", str(output),
                "--api-base", server.base_url, "--api-model", "teacher-x",
                "--api-key-env", "RLKD_TEACH_KEY", "--samples", "3", "--temperature", "0.8",
                "--max-new-tokens", "300", "--timeout", "0.5", "--retries", "2",
                "--backoff", "0.01", "--concurrency", "4")
        code, printed = cli(*args)
        assert code == 0, printed
        kept = {row["id"]: row for row in read_lines(output)}
        ids = {m: p.id for m, p in by_mood.items()}
        assert set(kept) == {ids[m] for m in ("right", "wrong-then-right", "500-once", "slow-once")}
        assert kept[ids["right"]]["attempts"] == 1
        assert kept[ids["wrong-then-right"]]["attempts"] == 2
        for row in kept.values():
            problem = next(p for p in problems if p.id == row["id"])
            assert row == {"id": problem.id, "question": problem.question, "answer": problem.answer,
                           "reasoning": problem.reasoning, "source": "teacher:teacher-x",
                           "attempts": row["attempts"]}
        rejects = {row["id"]: row for row in read_lines(tmp_path / "teacher.rejects.jsonl")}
        assert rejects[ids["always-wrong"]]["reason"] == "no_correct_trace"
        wrong_answer = str(int(float(by_mood["always-wrong"].answer)) + 1)
        assert rejects[ids["always-wrong"]]["answers"] == [wrong_answer, None, wrong_answer]
        assert rejects[ids["not-json"]]["reason"] == "request_failed"
        assert "malformed response" in rejects[ids["not-json"]]["detail"]
        assert "accepted │ 4" in printed and "rejected: no_correct_trace │ 1" in printed
        # Requests: the teacher prompt, the sampling settings, the key as a bearer token only.
        _, auth, body = server.requests[0]
        assert auth == f"Bearer {SECRET}" and SECRET not in printed
        assert body["messages"][0] == {"role": "system", "content": TEACHER_SYSTEM_PROMPT}
        assert body["temperature"] == 0.8 and body["max_tokens"] == 300
        assert body["model"] == "teacher-x"

        # Re-run: only the failed request is tried again (a wrong teacher is not re-asked).
        healed = True
        before = len(server.requests)
        code, printed = cli(*args)
        assert code == 0, printed
        assert len(server.requests) - before == 1
        assert "skipped (done by an earlier run) │ 5" in printed
    assert len(read_lines(output)) == 5
    # The output is a teacher file for the problems, and a problem file by itself.
    with_traces = load_problems(str(path), teacher=output, require_trace=False)
    assert sum(p.reasoning is not None for p in with_traces) == 5
    assert [p.id for p in load_problems(str(output))] == [row["id"] for row in read_lines(output)]


def test_teach_from_a_reasoning_model_keeps_its_separate_reasoning(problems_file, tmp_path):
    """DeepSeek's API (deepseek-reasoner), and vLLM or SGLang with a reasoning parser, send the
    chain of thought in `reasoning_content` (newer vLLM: `reasoning`) and only a short answer in
    `content`: the trace is the reasoning, the answer is read from the content."""
    path, problems = problems_file
    moods = ("reasoning_content", "reasoning", "think-in-content", "wrong-content", "cut-off",
             "no-usable-field")
    by_mood = dict(zip(moods, problems))

    def respond(request, attempt):
        question = last_user_message(request)
        mood = next(m for m, p in by_mood.items() if p.question == question)
        problem = by_mood[mood]
        thought = f"\n{problem.reasoning}\n"  # vLLM's parser leaves the newlines after <think>
        if mood == "reasoning_content":
            return Reply(f"The answer is {problem.answer}.",
                         message_fields={"reasoning_content": thought})
        if mood == "reasoning":  # cut off right after the answer: right, so kept all the same
            return Reply(f"#### {problem.answer}", message_fields={"reasoning": thought},
                         finish_reason="length")
        if mood == "think-in-content":  # the content's own think block wins over the field
            return Reply(f"<think>\n{problem.reasoning}\n</think>\n#### {problem.answer}",
                         message_fields={"reasoning_content": "A summary of the thinking."})
        if mood == "wrong-content":  # the reasoning ends on the right number, the answer not
            return Reply(f"#### {int(float(problem.answer)) + 1}",
                         message_fields={"reasoning_content": thought})
        if mood == "cut-off":  # max_tokens hit while thinking: vLLM sends content null
            return Reply(message_fields={"content": None, "reasoning_content": thought},
                         finish_reason="length")
        # An empty or non-text field is no reasoning: the content is the whole reply, as before.
        return Reply(f"{problem.reasoning}\n#### {problem.answer}",
                     message_fields={"reasoning_content": "  ", "reasoning": {"effort": "high"}})

    output = tmp_path / "teacher.jsonl"
    with ChatServer(respond) as server:
        code, printed = cli("teach", "--data", str(path), "--output", str(output),
                            "--api-base", server.base_url, "--api-model", "reasoner",
                            "--samples", "2", "--retries", "0")
    assert code == 0, printed
    assert "accepted │ 4" in printed and "rejected: no_correct_trace │ 2" in printed, printed
    ids = {m: p.id for m, p in by_mood.items()}
    kept = {row["id"]: row for row in read_lines(output)}
    assert set(kept) == {ids[m] for m in ("reasoning_content", "reasoning", "think-in-content",
                                          "no-usable-field")}
    for row in kept.values():
        problem = next(p for p in problems if p.id == row["id"])
        assert row == {"id": problem.id, "question": problem.question, "answer": problem.answer,
                       "reasoning": problem.reasoning, "source": "teacher:reasoner",
                       "attempts": 1}
    rejects = {row["id"]: row for row in read_lines(tmp_path / "teacher.rejects.jsonl")}
    wrong_answer = str(int(float(by_mood["wrong-content"].answer)) + 1)
    assert rejects[ids["wrong-content"]]["answers"] == [wrong_answer, wrong_answer]
    assert rejects[ids["wrong-content"]]["cut_off"] == 0
    assert rejects[ids["wrong-content"]]["detail"] == "no right final answer in 2 sample(s)"
    # No answer after the thinking: a sample without an answer, not a failed request (a re-run
    # would ask again forever), and not the last number the unfinished reasoning reached.
    assert rejects[ids["cut-off"]]["reason"] == "no_correct_trace"
    assert rejects[ids["cut-off"]]["answers"] == [None, None]
    # The token limit is named as the likely cause, so that the user knows what to raise.
    assert rejects[ids["cut-off"]]["cut_off"] == 2
    assert rejects[ids["cut-off"]]["detail"] == (
        "no right final answer in 2 sample(s); the token limit cut off 2 of them (raise "
        "--max-new-tokens and re-run with --retry-rejected)")


def test_chat_client_joins_separate_reasoning_only_when_asked():
    """`with_reasoning` puts the reasoning field before the content as a think block; without
    it (`gsrm label`: a labeller's steps are its content) the reply is the content alone. A
    malformed content is refused either way. A reply says whether max_tokens cut it off."""
    from rlkd_lite.data.openai_client import ApiError, ChatClient, ChatReply

    replies = {
        "separate": Reply("#### 5", message_fields={"reasoning_content": "2+3 = 5"}),
        "both fields": Reply("#### 5", message_fields={"reasoning_content": "2+3 = 5",
                                                       "reasoning": "ignored"}),
        "number content": Reply(message_fields={"content": 5, "reasoning_content": "2+3 = 5"}),
        "no content": Reply(body=json.dumps({"choices": [{"message": {
            "role": "assistant", "reasoning_content": "2+3 = 5"}}]}).encode()),
        "cut off": Reply("2+3 =", finish_reason="length"),
        "no finish reason": Reply(body=json.dumps({"choices": [{"message": {
            "role": "assistant", "content": "#### 5"}}]}).encode()),
    }
    messages = {name: [{"role": "user", "content": name}] for name in replies}
    with ChatServer(lambda request, attempt: replies[last_user_message(request)]) as server:
        client = ChatClient(server.base_url, "m", max_retries=0)
        assert client.complete(messages["separate"], with_reasoning=True) == ChatReply(
            "<think>\n2+3 = 5\n</think>\n#### 5", cut_off=False)
        assert client.complete(messages["both fields"], with_reasoning=True).text == (
            "<think>\n2+3 = 5\n</think>\n#### 5")
        assert client.complete(messages["separate"]).text == "#### 5"
        assert [reply.text for _, reply in client.complete_many(
            [messages["separate"]], with_reasoning=True)] == ["<think>\n2+3 = 5\n</think>\n#### 5"]
        assert client.complete(messages["cut off"]) == ChatReply("2+3 =", cut_off=True)
        assert [reply for _, reply in client.complete_many([messages["cut off"]])] == [
            ChatReply("2+3 =", cut_off=True)]
        # A server that sends no finish reason: not cut off, and no error.
        assert client.complete(messages["no finish reason"]) == ChatReply("#### 5", cut_off=False)
        with pytest.raises(ApiError, match="message content is int, not text"):
            client.complete(messages["number content"], with_reasoning=True)
        with pytest.raises(ApiError, match=r"no choices\[0\]\.message\.content"):
            client.complete(messages["no content"], with_reasoning=True)
        # Only the request body's own parameters are sent.
        assert all("with_reasoning" not in body for _, _, body in server.requests)


def test_teach_needs_exactly_one_teacher(tmp_path):
    code, output = cli("teach", "--output", str(tmp_path / "t.jsonl"))
    assert code == 1 and "exactly one teacher" in output
    code, output = cli("teach", "--output", str(tmp_path / "t.jsonl"), "--model", "x/y",
                       "--api-base", "http://127.0.0.1:1/v1")
    assert code == 1 and "exactly one teacher" in output


@pytest.mark.slow
def test_teach_with_a_local_model(tiny_model_dir, tmp_path):
    """The tiny random model never answers right: every problem ends rejected after K samples,
    each sample's extracted answer recorded, and the run fails (nothing usable); a re-run asks
    the model nothing."""
    problems = load_problems("synthetic", subset=3)
    path = tmp_path / "problems.jsonl"
    write_problems_jsonl(path, problems)
    output = tmp_path / "teacher.jsonl"
    args = ("teach", "--data", str(path), "--output", str(output), "--model", str(tiny_model_dir),
            "--samples", "2", "--max-new-tokens", "6", "--batch-size", "2", "--seed", "1")
    code, printed = cli(*args)
    assert code == 1 and "error: nothing accepted" in printed, printed
    rejects = read_lines(tmp_path / "teacher.rejects.jsonl")
    assert sorted(row["id"] for row in rejects) == sorted(p.id for p in problems)
    assert all(row["reason"] == "no_correct_trace" and len(row["answers"]) == 2
               for row in rejects)
    # It never stops before 6 tokens either: the rejects say that the limit cut it off.
    assert all(row["cut_off"] == 2 and row["detail"].endswith(
        "the token limit cut off 2 of them (raise --max-new-tokens and re-run with "
        "--retry-rejected)") for row in rejects)
    assert "rejected: no_correct_trace │ 3" in printed
    code, printed = cli(*args)
    assert code == 1 and "skipped (done by an earlier run) │ 3" in printed
    assert "--retry-rejected" in printed


@pytest.mark.slow
def test_local_teacher_samples_one_reply_per_conversation(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlkd_lite.data.openai_client import ChatReply
    from rlkd_lite.data.teacher import LocalTeacher, teacher_messages
    from rlkd_lite.structure.llm import chat_token_ids

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    greedy = LocalTeacher(model, tokenizer, name="tiny", batch_size=2, max_new_tokens=5,
                          temperature=0.0)
    conversations = [teacher_messages(q) for q in ("What is 2+2?", "A much longer question "
                                                   "about apples and pears?", "Hi?")]
    replies = greedy.sample(conversations)
    assert len(replies) == 3 and all(isinstance(r, ChatReply) for r in replies)
    # The random model does not stop by itself: all 5 tokens used, no EOS, cut off.
    assert all(r.cut_off for r in replies)
    # Batching and order do not change what each conversation gets (greedy).
    assert greedy.sample(conversations[::-1]) == replies[::-1]
    assert greedy.source == "teacher:tiny"
    # A reply that ends on one of the generation config's EOS ids (a list, as Qwen's) is not cut
    # off, even on the last token allowed: make the first greedy token an EOS, allow one token.
    with torch.no_grad():
        first = model(torch.tensor(chat_token_ids(tokenizer, conversations[:1]))).logits
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, int(first[0, -1].argmax())]
    one_token = LocalTeacher(model, tokenizer, name="tiny", max_new_tokens=1, temperature=0.0)
    assert not one_token.sample(conversations[:1])[0].cut_off


def test_teach_exits_1_when_every_request_failed(tmp_path):
    """A run that accepted nothing because its requests failed must stop a script; the summary
    is still printed. A later run that accepts, or has nothing left to do, exits 0."""
    healed = False

    def respond(request, attempt):
        if healed:
            problem = next(p for p in problems if p.question == last_user_message(request))
            return Reply(f"{problem.reasoning}\n#### {problem.answer}")
        return Reply(status=503, body=b"upstream down")

    problems = load_problems("synthetic", subset=2)
    output = tmp_path / "t.jsonl"
    with ChatServer(respond) as server:
        args = ("teach", "--output", str(output), "--subset", "2", "--api-base",
                server.base_url, "--api-model", "m", "--retries", "0", "--samples", "1")
        code, printed = cli(*args)
        assert code == 1
        assert "accepted │ 0" in printed and "rejected: request_failed │ 2" in printed
        assert printed.endswith(
            f"error: nothing accepted: 2 request(s) failed (details in "
            f"{tmp_path / 't.rejects.jsonl'}). Check --api-base, --api-model and the server, "
            f"then run again: failed items are retried.")
        healed = True
        code, printed = cli(*args)
        assert code == 0 and "accepted │ 2" in printed, printed
        code, printed = cli(*args)
        assert code == 0 and "skipped (done by an earlier run) │ 2" in printed, printed


def test_teach_refuses_an_output_that_is_a_directory_before_any_work(tmp_path):
    folder = tmp_path / "adir"
    folder.mkdir()
    with ChatServer(lambda request, attempt: Reply("#### 1")) as server:
        code, printed = cli("teach", "--output", str(folder), "--subset", "2",
                            "--api-base", server.base_url, "--api-model", "m")
        assert server.requests == []
    assert code == 1 and printed.startswith(f"error: {folder}: is a directory"), printed
    # A local teacher is not loaded either (this one does not exist).
    code, printed = cli("teach", "--output", str(folder), "--model", "no-such/teacher-model")
    assert code == 1 and printed.startswith(f"error: {folder}: is a directory"), printed
    assert list(folder.iterdir()) == []


def test_teach_retries_earlier_rejects_only_when_asked(tmp_path):
    """More --samples alone skip the problems rejected before; --retry-rejected redoes them."""
    problems = load_problems("synthetic", subset=3)
    easy = problems[0]

    def respond(request, attempt):
        problem = next(p for p in problems if p.question == last_user_message(request))
        right = problem is easy or attempt >= 3  # the hard ones need a third sample
        answer = problem.answer if right else int(float(problem.answer)) + 1
        return Reply(f"{problem.reasoning}\n#### {answer}")

    output = tmp_path / "t.jsonl"
    with ChatServer(respond) as server:
        args = ("teach", "--output", str(output), "--subset", "3", "--api-base",
                server.base_url, "--api-model", "m", "--concurrency", "1")
        code, printed = cli(*args, "--samples", "2")
        assert code == 0 and "rejected: no_correct_trace │ 2" in printed, printed
        before = len(server.requests)
        code, printed = cli(*args, "--samples", "4")
        assert code == 0 and len(server.requests) == before
        assert "skipped (done by an earlier run) │ 3" in printed
        assert "of them rejected (--retry-rejected redoes them) │ 2" in printed
        code, printed = cli(*args, "--samples", "4", "--retry-rejected")
        assert code == 0 and "accepted │ 2" in printed, printed
        assert "skipped (done by an earlier run) │ 1" in printed and "of them" not in printed
        assert len(server.requests) == before + 2  # one more sample each was enough
        # Accepted now, they are no longer counted as rejects (their old lines stay).
        code, printed = cli(*args)
        assert code == 0 and "skipped (done by an earlier run) │ 3" in printed
        assert "of them" not in printed
    assert sorted(row["id"] for row in read_lines(output)) == sorted(p.id for p in problems)


def test_teach_exits_1_when_no_trace_was_right(tmp_path):
    """All samples wrong and nothing from an earlier run: exit 1 saying why, so that a script
    stops; a re-run, skipping them, says how to redo them."""
    problems = load_problems("synthetic", subset=2)

    def respond(request, attempt):
        return Reply("I think it is\n#### -1")

    output = tmp_path / "t.jsonl"
    rejects = tmp_path / "t.rejects.jsonl"
    with ChatServer(respond) as server:
        args = ("teach", "--output", str(output), "--subset", "2", "--api-base",
                server.base_url, "--api-model", "m", "--samples", "2")
        code, printed = cli(*args)
        assert code == 1 and "rejected: no_correct_trace │ 2" in printed
        assert printed.endswith(
            f"error: nothing accepted, and {output} holds nothing from an earlier run: rejected "
            f"2 no_correct_trace (details in {rejects})")
        code, printed = cli(*args)
        assert code == 1 and printed.endswith(
            f"error: nothing accepted, and {output} holds nothing from an earlier run: skipped 2 "
            f"rejected by an earlier run (--retry-rejected redoes them)"), printed
    assert not output.exists() and len(read_lines(rejects)) == len(problems)
