"""The model-backed GSRM parts: the `llm` judge and the `gsrm` decomposer (README, "How the
structure reward works").

Both run in process on the student's own base model, with the frozen gsrm adapter (or the bare
base model, adapter None) switched in by `use_adapter` for the duration of a call, so they can
be called from a reward function in the middle of training; decompositions decode with Unsloth's
CUDA graphs where its rollouts do (`decode_graphs`). This module needs torch; the
`rlkd_lite.structure` package imports it only when one of these names is asked for.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from rlkd_lite.models.adapters import use_adapter
from rlkd_lite.models.generation import decode_graphs
from rlkd_lite.structure.decomposers import DecomposeInput
from rlkd_lite.structure.judges import JudgePair
from rlkd_lite.structure.steps import (TAG_START_LETTERS, Step, begins_tag, parse_steps,
                                      render_steps)

log = logging.getLogger(__name__)

# Extra argument for chat templates that know it (Qwen3): answer directly, no <think> block.
# Templates that do not know it ignore it.
_TEMPLATE_OPTIONS = {"enable_thinking": False}


def chat_token_ids(tokenizer: Any,
                   conversations: Sequence[list[dict[str, str]]]) -> list[list[int]]:
    """Token ids of each conversation with the assistant's turn opened."""
    texts = [
        tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                      **_TEMPLATE_OPTIONS)
        for messages in conversations
    ]
    # The chat template already wrote any special tokens the model needs.
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def left_padded_batches(tokenizer: Any, ids: list[list[int]], batch_size: int, device: Any):
    """Yield (indices, input_ids, attention_mask) batches, shortest prompts first.

    Sorting by length keeps padding (wasted compute) small; callers put results back in their
    original order with the indices. Left padding puts every prompt's last token in the last
    column, where the next-token logits are read and generation continues.
    """
    if tokenizer.pad_token_id is None:
        raise ValueError("the tokenizer has no pad token; set one (e.g. its eos token)")
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    for start in range(0, len(order), batch_size):
        indices = order[start:start + batch_size]
        batch = tokenizer.pad({"input_ids": [ids[i] for i in indices]}, padding_side="left",
                              return_tensors="pt")
        yield indices, batch["input_ids"].to(device), batch["attention_mask"].to(device)


def stop_token_ids(model: Any, tokenizer: Any) -> set[int]:
    """The tokens that end a generation: the tokenizer's end-of-sequence token and those of
    the model's generation config (an id or a list: chat models also stop at the end of a
    turn)."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = {tokenizer.eos_token_id, *(configured if isinstance(configured, list) else [configured])}
    return ids - {None}


def cut_off_rows(generated: torch.Tensor, max_new_tokens: int, model: Any,
                 tokenizer: Any) -> list[bool]:
    """Per row of `generate`'s new tokens: did the token limit end it? That is a row that used
    all `max_new_tokens` without a stop token (`stop_token_ids`). A row that a stopping
    criterion ended is padded with no stop token: callers leave those rows out."""
    if generated.shape[1] < max_new_tokens:  # generation stopped early: every row had ended
        return [False] * generated.shape[0]
    stops = torch.tensor(sorted(stop_token_ids(model, tokenizer)), device=generated.device)
    return (~torch.isin(generated, stops).any(dim=1)).tolist()


# ---------------------------------------------------------------------------------------------
# Judge

JUDGE_SYSTEM_PROMPT = (
    "You compare two short texts taken from step-by-step solutions of math word problems. "
    "Reply with one word: yes or no."
)
JUDGE_QUESTIONS = {
    "problem": "Do Text A and Text B describe the same sub-problem, that is, the same quantity "
               "to work out? Ignore differences in wording.",
    "answer": "Do Text A and Text B give the same answer? The same value written differently "
              "(\"24\", \"$24\", \"24 dollars\", \"24.0\") counts as the same.",
}
_YES_WORDS = ("yes", " yes", "Yes", " Yes")
_NO_WORDS = ("no", " no", "No", " No")


def judge_messages(pair: JudgePair, max_text_chars: int = 2000) -> list[dict[str, str]]:
    """The chat asking the judge about `pair`; each text is cut to `max_text_chars`."""
    teacher, student = pair.teacher[:max_text_chars], pair.student[:max_text_chars]
    return [
        {"role": "system", "content": JUDGE_SYSTEM_PROMPT},
        {"role": "user", "content": f"{JUDGE_QUESTIONS[pair.kind]}\n\nText A: {teacher}\n"
                                    f"Text B: {student}\n\nAnswer yes or no."},
    ]


def _single_token_ids(tokenizer: Any, words: Sequence[str]) -> list[int]:
    """Ids of the words that are one token each (the others cannot be read from one logit)."""
    ids = {tuple(tokenizer.encode(word, add_special_tokens=False)) for word in words}
    single = sorted(token_ids[0] for token_ids in ids if len(token_ids) == 1)
    if not single:
        raise ValueError(f"none of {words} is a single token for this tokenizer")
    return single


class LLMJudge:
    """Judges pairs by the model's next-token probability of "yes" against "no".

    One forward pass per batch, no sampling: the chance of yes is the probability mass of the
    single-token spellings of yes ("yes", " yes", "Yes", " Yes") and likewise for no, at the
    position where the answer would start. A pair is judged the same when p(yes) > p(no).
    `max_text_chars` bounds each text, so that a degenerate rollout cannot blow up a batch.
    """

    def __init__(self, model: Any, tokenizer: Any, adapter: str | None = None,
                 batch_size: int = 64, max_text_chars: int = 2000):
        self.model, self.tokenizer, self.adapter = model, tokenizer, adapter
        self.batch_size, self.max_text_chars = batch_size, max_text_chars
        self.yes_ids = _single_token_ids(tokenizer, _YES_WORDS)
        self.no_ids = _single_token_ids(tokenizer, _NO_WORDS)

    def __call__(self, pairs: Sequence[JudgePair]) -> list[bool]:
        return [score > 0.5 for score in self.scores(pairs)]

    def scores(self, pairs: Sequence[JudgePair]) -> list[float]:
        """p(yes) / (p(yes) + p(no)) for each pair, in [0, 1], in the order of `pairs`."""
        if not pairs:
            return []
        ids = chat_token_ids(self.tokenizer,
                             [judge_messages(pair, self.max_text_chars) for pair in pairs])
        scores = [0.0] * len(pairs)
        with use_adapter(self.model, self.adapter), torch.inference_mode():
            for indices, input_ids, attention_mask in left_padded_batches(
                    self.tokenizer, ids, self.batch_size, self.model.device):
                for index, score in zip(indices, self._batch_scores(input_ids, attention_mask)):
                    scores[index] = score
        return scores

    def _batch_scores(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[float]:
        # Positions count real tokens only, as `generate` does with left padding, so a prompt's
        # result does not depend on how much padding its batch needed.
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask,
                            position_ids=position_ids, logits_to_keep=1, use_cache=False
                            ).logits[:, -1, :].float()
        # log p(yes) - log p(no); the softmax normaliser cancels.
        margin = logits[:, self.yes_ids].logsumexp(-1) - logits[:, self.no_ids].logsumexp(-1)
        return torch.sigmoid(margin).tolist()


# ---------------------------------------------------------------------------------------------
# Decomposer

DECOMPOSE_INSTRUCTION = """\
Rewrite the reasoning of a solution as numbered steps. Each step has exactly three lines:
[Meta-reasoning i]: why this sub-problem is the one to solve next. Do not state its answer here.
[Sub-problem i]: the one sub-problem this step solves.
[Answer i]: the short answer to that sub-problem, without reasoning.
Follow the order of the reasoning, put one sub-problem in each step, number the steps from 1, \
and write nothing but the steps."""

# Worked examples for the few-shot prompt: (question, free reasoning, steps). Written for this
# project in the GSM8K style; the steps are rendered by `render_steps`, the canonical format.
DECOMPOSE_EXAMPLES: tuple[tuple[str, str, tuple[Step, ...]], ...] = (
    (
        "A baker makes 24 muffins. She sells 3/4 of them and gives 2 of the rest to a "
        "neighbour. How many muffins does she have left?",
        "She sells 3/4 of 24, which is 18 muffins. That leaves 24 - 18 = 6 muffins. After "
        "giving 2 away she has 6 - 2 = 4 muffins left. The answer is 4.",
        (
            Step("To know what is left, first find how many muffins were sold.",
                 "How many muffins are 3/4 of 24?", "18"),
            Step("Taking the sold muffins from the total gives what remains before the gift.",
                 "How many muffins remain after selling 18 of 24?", "6"),
            Step("The gift to the neighbour comes out of what remains.",
                 "How many muffins are left after giving 2 of the 6 away?", "4"),
        ),
    ),
    (
        "Tom walks 3 km on every weekday and 5 km on each day of the weekend. How many "
        "kilometres does he walk in a week?",
        "On the 5 weekdays he walks 5 x 3 = 15 km. On the 2 weekend days he walks 2 x 5 = 10 km. "
        "So in a week he walks 15 + 10 = 25 km.",
        (
            Step("Weekdays and weekend days have different distances, so take the weekdays first.",
                 "How far does Tom walk on the 5 weekdays?", "15 km"),
            Step("Next comes the weekend, at its own daily distance.",
                 "How far does Tom walk on the 2 weekend days?", "10 km"),
            Step("The weekly distance combines both parts.",
                 "What is 15 km plus 10 km?", "25 km"),
        ),
    ),
)


def _decompose_request(question: str, reasoning: str) -> str:
    return f"Question:\n{question}\n\nReasoning:\n{reasoning}"


def decomposition_messages(question: str, reasoning: str, few_shot: bool) -> list[dict[str, str]]:
    """The chat asking for the steps of `reasoning`; its reply is the tagged steps.

    Zero-shot (`few_shot` False) is the prompt a trained gsrm adapter is trained and run on;
    few-shot adds the worked examples as earlier turns, for a base model without that training.
    """
    messages = [{"role": "system", "content": DECOMPOSE_INSTRUCTION}]
    if few_shot:
        for example_question, example_reasoning, steps in DECOMPOSE_EXAMPLES:
            request = _decompose_request(example_question, example_reasoning)
            messages += [
                {"role": "user", "content": request},
                {"role": "assistant", "content": render_steps(steps)},
            ]
    messages.append({"role": "user", "content": _decompose_request(question, reasoning)})
    return messages


class _StepLimit(StoppingCriteria):
    """Stopping criterion: a row is done once the last step its limit keeps is complete.

    That is when, after the `limit`-th step has an answer, a new line begins a tag ("[Met", the
    next step's), or else (a step without an answer) when a step past the limit has a line.
    Waiting for a whole next step, as a plain count would, decodes its tag and meta-reasoning
    line for nothing (about 25 tokens a row); stopping at the answer's first line end would cut
    an answer that goes on ("\\[", a list). The tag's beginning is left in the output;
    `without_partial_tag` drops it. The output is decoded and parsed only at a token that ends
    a line or holds a "[", and at the few tokens after that (which bring the letters of a tag's
    name, `begins_tag`); tokens are classified once per id and cached.
    """

    def __init__(self, tokenizer: Any, limits: list[int | None], prompt_length: int):
        self.tokenizer, self.limits, self.prompt_length = tokenizer, limits, prompt_length
        self._kinds: dict[int, tuple[bool, bool]] = {}
        self._after_bracket = [0] * len(limits)  # per row: tokens still to check after a "["
        self.stopped: set[int] = set()  # rows this criterion ended

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        done = [False] * len(self.limits)
        for row, (token, limit) in enumerate(zip(input_ids[:, -1].tolist(), self.limits)):
            ends_line, has_bracket = self._kind(token)
            after_bracket = self._after_bracket[row] > 0
            self._after_bracket[row] = (TAG_START_LETTERS if has_bracket
                                        else max(0, self._after_bracket[row] - 1))
            if limit is None or not (ends_line or has_bracket or after_bracket):
                continue
            output = self.tokenizer.decode(input_ids[row, self.prompt_length:],
                                           skip_special_tokens=True)
            complete = without_partial_tag(output)
            if complete != output:  # a new line begins a tag: is the last kept step done?
                steps = parse_steps(complete)
                done[row] = len(steps) > limit or (
                    0 < limit <= len(steps) and bool(steps[limit - 1].answer))
            elif ends_line:
                done[row] = len(parse_steps(output)) > limit
        self.stopped.update(row for row, row_done in enumerate(done) if row_done)
        return torch.tensor(done, device=input_ids.device)

    def _kind(self, token: int) -> tuple[bool, bool]:
        """(ends a line, holds a "[") for a token id."""
        if token not in self._kinds:
            text = self.tokenizer.decode([token])
            self._kinds[token] = ("\n" in text, "[" in text)
        return self._kinds[token]


def without_partial_tag(text: str) -> str:
    """`text` without a last line that only begins a tag (`begins_tag`): where a decomposition
    stopped by `_StepLimit` ends."""
    head, newline, last = text.rpartition("\n")
    return head + newline if newline and begins_tag(last) else text


class GSRMDecomposer:
    """Decomposes reasoning into steps by greedy generation with the gsrm adapter.

    `adapter` None runs the bare base model. `few_shot` (default: True exactly when `adapter`
    is None) adds worked examples to the prompt; a trained gsrm adapter is run zero-shot, on
    the prompt it was trained on (`decomposition_messages`). `max_steps` (per call, or a
    default here) stops an item's generation once its `limit`-th step is complete (see
    `_StepLimit`) and keeps the first `limit` steps: the structure reward never looks past the
    teacher's step count.
    Unparseable output gives [] for that item. After each call `last_counts` holds the work it
    did: generated tokens (`tokens`, padding not counted) and decode steps (`decode_steps`, one
    batched forward pass each, summed over generate calls), for throughput metrics, and the
    decompositions that the token budget cut off (`cut_off`: their last steps are missing or
    cut short; `max_new_tokens` or the model's max_seq_length is too small for them).
    """

    WORK_COUNTS = ("tokens", "decode_steps", "cut_off")
    """The keys of `last_counts`."""

    def __init__(self, model: Any, tokenizer: Any, adapter: str | None = None,
                 batch_size: int = 16, max_new_tokens: int = 512, max_steps: int | None = None,
                 few_shot: bool | None = None):
        self.model, self.tokenizer, self.adapter = model, tokenizer, adapter
        self.batch_size, self.max_new_tokens, self.max_steps = batch_size, max_new_tokens, max_steps
        self.few_shot = adapter is None if few_shot is None else few_shot
        self.last_counts = dict.fromkeys(self.WORK_COUNTS, 0)
        self._warned_cut_off = False

    def __call__(self, items: Sequence[DecomposeInput],
                 max_steps: int | Sequence[int | None] | None = None) -> list[list[Step]]:
        limits = self._limits(len(items), max_steps)
        return [
            steps if limit is None else steps[:limit]
            for steps, limit in zip(map(parse_steps, self.completions(items, limits)), limits)
        ]

    def completions(self, items: Sequence[DecomposeInput],
                    max_steps: int | Sequence[int | None] | None = None) -> list[str]:
        """The generated text for each item (special tokens removed), in the order of `items`."""
        self.last_counts = dict.fromkeys(self.WORK_COUNTS, 0)
        limits = self._limits(len(items), max_steps)
        texts = [""] * len(items)
        # No reasoning, no steps: asked anyway, a model makes them up from the question.
        todo = [i for i, item in enumerate(items) if item.reasoning.strip()]
        if not todo:
            return texts
        ids = chat_token_ids(self.tokenizer, [
            decomposition_messages(items[i].question, items[i].reasoning, self.few_shot)
            for i in todo
        ])
        with use_adapter(self.model, self.adapter), decode_graphs(self.model), \
                torch.inference_mode():
            for batch, input_ids, attention_mask in left_padded_batches(
                    self.tokenizer, ids, self.batch_size, self.model.device):
                indices = [todo[j] for j in batch]
                prompt_length = input_ids.shape[1]
                room = self._room(prompt_length)
                if room < 1:
                    log.warning("gsrm: %d decomposition prompts of %d tokens leave no room in the "
                                "model's max_seq_length; they get no steps (raise "
                                "max_seq_length)", len(indices), prompt_length)
                    continue
                batch_limits = [limits[i] for i in indices]
                stopping = StoppingCriteriaList()
                if any(limit is not None for limit in batch_limits):
                    stopping.append(_StepLimit(self.tokenizer, batch_limits, prompt_length))
                output = self.model.generate(
                    input_ids=input_ids, attention_mask=attention_mask,
                    max_new_tokens=room, do_sample=False, num_beams=1,
                    # Explicit: unset options come from the model's generation config, and
                    # Qwen-Instruct's sets a repetition penalty, which works against copying
                    # numbers and phrases from the reasoning.
                    repetition_penalty=1.0,
                    # A model in the middle of training has its config's KV cache turned off.
                    use_cache=True,
                    pad_token_id=self.tokenizer.pad_token_id,
                    stopping_criteria=stopping,
                )
                generated = output[:, prompt_length:]
                self.last_counts["decode_steps"] += generated.shape[1]
                self.last_counts["tokens"] += int((generated != self.tokenizer.pad_token_id).sum())
                # The rows the step limit ended are complete, with or without a stop token.
                stopped = stopping[0].stopped if stopping else set()
                self.last_counts["cut_off"] += sum(
                    cut and row not in stopped for row, cut in
                    enumerate(cut_off_rows(generated, room, self.model, self.tokenizer)))
                decoded = self.tokenizer.batch_decode(generated, skip_special_tokens=True)
                for index, text in zip(indices, decoded):
                    texts[index] = without_partial_tag(text)
        if self.last_counts["cut_off"] and not self._warned_cut_off:
            self._warned_cut_off = True  # once: the budget is the same on every call
            log.warning("gsrm: the token budget cut off %d of %d decompositions, whose last "
                        "steps are then missing (raise the recipe's gsrm_max_new_tokens, now %d, "
                        "or max_seq_length where long prompts leave less room; in training the "
                        "metric structure/gsrm_cut_off counts them)", self.last_counts["cut_off"],
                        len(todo), self.max_new_tokens)
        return texts

    def _room(self, prompt_length: int) -> int:
        """New tokens that fit after a prompt: an Unsloth model refuses sequences longer than
        the `max_seq_length` it was loaded with (a few-shot prompt plus a long rollout can be)."""
        limit = getattr(self.model, "max_seq_length", None)
        return self.max_new_tokens if not limit else min(self.max_new_tokens,
                                                         limit - prompt_length)

    def _limits(self, count: int, max_steps: int | Sequence[int | None] | None) -> list[int | None]:
        if max_steps is None:
            max_steps = self.max_steps
        if max_steps is None or isinstance(max_steps, int):
            return [max_steps] * count
        if len(max_steps) != count:
            raise ValueError(f"max_steps has {len(max_steps)} limits for {count} items")
        return list(max_steps)
