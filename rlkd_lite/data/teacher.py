"""Teacher traces: sample a teacher's reasoning for each problem and keep the first trace whose
final answer is right (what `rlkd-lite teach` runs).

Two teachers, one interface (`TeacherSampler`: one reply per conversation, in order):
- `LocalTeacher`: a local model (alias, path or Hub id) sampled with transformers' `generate`
  in left-padded batches;
- `ApiTeacher`: any OpenAI-compatible chat-completions endpoint, requests on a thread pool; a
  reasoning model's separate reasoning field becomes the reply's `<think>` block, so that it is
  the trace (see `ChatClient.complete`).

Problems go in chunks (one generate batch, or `concurrency` requests). Each round samples one
reply for every problem of the chunk still without a right trace, up to `samples` rounds; a
problem is written the moment it is decided, so a crash loses at most the chunk in flight and a
re-run skips every id already written (see `rlkd_lite.data.resumable`).

Output lines, readable by `load_problems` as a problem file or as a `--teacher` file:
    {"id", "question", "answer", "reasoning", "source": "teacher:MODEL", "attempts"}
Rejects, in the rejects file: {"id", "reason", "detail", "answers"}, reason one of
`no_correct_trace` (all samples wrong; "answers" lists what they answered and an extra
"cut_off" how many of them the token limit ended, which rarely reach an answer: the detail then
says to raise it; redone by a re-run with `retry_rejected`, e.g. with more samples or tokens)
or `request_failed` (retried by any re-run).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from rlkd_lite.console import item_progress
from rlkd_lite.data.answers import answers_match, extract_final_answer
from rlkd_lite.data.openai_client import ChatClient, ChatReply, Messages
from rlkd_lite.data.problems import Problem, split_gsm8k_solution
from rlkd_lite.data.resumable import REQUEST_FAILED, ResumableOutput
from rlkd_lite.errors import RlkdError
from rlkd_lite.structure.steps import think_text

NO_CORRECT_TRACE = "no_correct_trace"

TEACHER_SYSTEM_PROMPT = (
    "Solve the math word problem. Reason step by step, one small calculation per line, and "
    "end with the final answer alone on the last line, written as \"#### <number>\"."
)


def teacher_messages(question: str, system_prompt: str = TEACHER_SYSTEM_PROMPT) -> Messages:
    """The chat that asks the teacher to solve `question`."""
    return [{"role": "system", "content": system_prompt}, {"role": "user", "content": question}]


def trace_reasoning(reply: str) -> str:
    """The reasoning of a teacher's reply: the `<think>` block when there is one, else the
    whole reply, without the closing `#### N` line (the convention of `Problem.reasoning`)."""
    text = think_text(reply)
    try:
        text, _ = split_gsm8k_solution(text)
    except ValueError:  # no "#### N" line: the reply is all reasoning
        pass
    return text.strip()


class TeacherSampler(Protocol):
    """A teacher: one sampled reply (or the exception that stopped it) per conversation."""

    source: str
    """How output lines name this teacher ("teacher:MODEL")."""
    chunk_size: int
    """Conversations worth sampling together (a batch, or the requests in flight)."""

    def sample(self, conversations: Sequence[Messages]) -> list[ChatReply | Exception]: ...


class LocalTeacher:
    """A local causal LM sampled with `generate`, `batch_size` conversations per call.

    `temperature` 0 decodes greedily (then a second sample repeats the first: use samples=1).
    """

    def __init__(self, model: Any, tokenizer: Any, *, name: str, batch_size: int = 8,
                 max_new_tokens: int = 512, temperature: float = 0.7, top_p: float = 1.0):
        self.model, self.tokenizer = model, tokenizer
        self.source = f"teacher:{name}"
        self.chunk_size = batch_size
        self.max_new_tokens, self.temperature, self.top_p = max_new_tokens, temperature, top_p

    def sample(self, conversations: Sequence[Messages]) -> list[ChatReply | Exception]:
        """A reply is cut off when its row used all `max_new_tokens` (`cut_off_rows`)."""
        import torch

        from rlkd_lite.structure.llm import chat_token_ids, cut_off_rows, left_padded_batches

        ids = chat_token_ids(self.tokenizer, conversations)
        replies: list[ChatReply | Exception] = [ChatReply("", False)] * len(conversations)
        sampling = ({"do_sample": True, "temperature": self.temperature, "top_p": self.top_p}
                    if self.temperature > 0 else {"do_sample": False})
        with torch.inference_mode():
            for indices, input_ids, attention_mask in left_padded_batches(
                    self.tokenizer, ids, self.chunk_size, self.model.device):
                output = self.model.generate(
                    input_ids=input_ids, attention_mask=attention_mask,
                    max_new_tokens=self.max_new_tokens, pad_token_id=self.tokenizer.pad_token_id,
                    **sampling)
                generated = output[:, input_ids.shape[1]:]
                texts = self.tokenizer.batch_decode(generated, skip_special_tokens=True)
                cut_off = cut_off_rows(generated, self.max_new_tokens, self.model, self.tokenizer)
                for index, text, cut in zip(indices, texts, cut_off):
                    replies[index] = ChatReply(text, cut)
        return replies


class ApiTeacher:
    """An OpenAI-compatible endpoint; a chunk is `client.concurrency` concurrent requests.

    Replies carry the message's reasoning field (`reasoning_content`, `reasoning`) as a
    `<think>` block: the structure to distil is there, the content holds only the answer.
    """

    def __init__(self, client: ChatClient, *, max_tokens: int = 1024, temperature: float = 0.7):
        self.client = client
        self.source = f"teacher:{client.model}"
        self.chunk_size = client.concurrency
        self.params = {"max_tokens": max_tokens, "temperature": temperature}

    def sample(self, conversations: Sequence[Messages]) -> list[ChatReply | Exception]:
        replies: list[ChatReply | Exception] = [ChatReply("", False)] * len(conversations)
        for index, reply in self.client.complete_many(conversations, with_reasoning=True,
                                                      **self.params):
            replies[index] = reply
        return replies


@dataclass
class _Attempts:
    """One problem's sampling so far."""

    problem: Problem
    answers: list[str | None]
    cut_off: int = 0
    """Samples that the token limit ended."""


def generate_teacher_traces(problems: Sequence[Problem], teacher: TeacherSampler,
                            output: ResumableOutput, *, samples: int = 4,
                            system_prompt: str = TEACHER_SYSTEM_PROMPT) -> dict[str, Any]:
    """Sample up to `samples` replies per problem not yet in `output`; accept the first with
    the right final answer and some reasoning, reject the problem otherwise. Returns
    `output.summary()`."""
    if samples < 1:
        raise RlkdError(f"samples per problem must be at least 1, got {samples}")
    todo = output.pending(problems, lambda problem: problem.id, lambda problem: problem.question)
    with item_progress("teach") as progress:
        task = progress.add_task("", total=len(todo))
        for start in range(0, len(todo), teacher.chunk_size):
            pending = [_Attempts(problem, []) for problem in todo[start:start + teacher.chunk_size]]
            for _ in range(samples):
                replies = teacher.sample([teacher_messages(a.problem.question, system_prompt)
                                          for a in pending])
                still = []
                for attempts, reply in zip(pending, replies):
                    if _decide(attempts, reply, teacher.source, output):
                        progress.advance(task)
                    else:
                        still.append(attempts)
                pending = still
                if not pending:
                    break
            for attempts in pending:
                detail = f"no right final answer in {samples} sample(s)"
                if attempts.cut_off:
                    detail += (f"; the token limit cut off {attempts.cut_off} of them (raise "
                               f"--max-new-tokens and re-run with --retry-rejected)")
                output.reject(attempts.problem.id, NO_CORRECT_TRACE, detail,
                              answers=attempts.answers, cut_off=attempts.cut_off)
                progress.advance(task)
            progress.update(task, description=output.tally())
    return output.summary()


def _decide(attempts: _Attempts, reply: ChatReply | Exception, source: str,
            output: ResumableOutput) -> bool:
    """Write the problem out if `reply` settles it (right answer, or a failed request)."""
    problem = attempts.problem
    if isinstance(reply, Exception):
        output.reject(problem.id, REQUEST_FAILED, str(reply), answers=attempts.answers)
        return True
    answer = extract_final_answer(reply.text)
    attempts.answers.append(answer)
    attempts.cut_off += reply.cut_off
    reasoning = trace_reasoning(reply.text)
    if not reasoning or not answers_match(answer, problem.answer):
        return False
    output.accept({"id": problem.id, "question": problem.question, "answer": problem.answer,
                   "reasoning": reasoning, "source": source,
                   "attempts": len(attempts.answers)})
    return True
