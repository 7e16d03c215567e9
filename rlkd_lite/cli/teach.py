"""`rlkd-lite teach`: teacher traces for a problem set, from a local model or an API."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from rlkd_lite.cli import app
from rlkd_lite.cli._common import check_job_outputs, user_errors
from rlkd_lite.cli._jobs import (ApiBase, ApiKeyEnv, ApiModel, Backoff, Concurrency, Rejects,
                                 Retries, RetryRejected, Timeout, make_client, finish_job)
from rlkd_lite.data.openai_client import DEFAULT_API_KEY_ENV
from rlkd_lite.train.config import MAX_SEED


@app.command()
def teach(
    output: Annotated[str, typer.Option(
        help="Teacher traces, JSONL: one {id, question, answer, reasoning, source} per problem "
             "whose trace was right. Appended to: re-running skips ids already accepted or "
             "rejected, except failed requests (see --retry-rejected).")
    ] = "teacher.jsonl",
    data: Annotated[str, typer.Option(
        help="Problems: synthetic (offline), gsm8k, gsm8k-subset (Hub), or a JSONL file with "
             "question and answer per line.")] = "synthetic",
    subset: Annotated[Optional[int], typer.Option(min=1, help="Use the first N problems.")] = None,
    split: Annotated[str, typer.Option(help="train or test (synthetic and gsm8k).")] = "train",
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED, help="Seed of the synthetic problems "
                                                                 "and of local sampling.")] = 0,
    model: Annotated[Optional[str], typer.Option(
        help="Local teacher: model alias (qwen2.5-0.5b/1.5b/3b/7b, smollm2-135m), path or Hub "
             "repo id. Give this or --api-base.")] = None,
    api_base: ApiBase = None,
    api_model: ApiModel = None,
    api_key_env: ApiKeyEnv = DEFAULT_API_KEY_ENV,
    samples: Annotated[int, typer.Option(
        min=1, help="Traces sampled per problem at most; the first with the right final answer "
                    "is kept.")] = 4,
    temperature: Annotated[float, typer.Option(
        min=0.0, help="Sampling temperature (0: greedy, then use --samples 1).")] = 0.7,
    max_new_tokens: Annotated[int, typer.Option(
        min=1, help="Longest reply, in tokens (a reasoning model's thinking counts: raise it "
                    "for one).")] = 512,
    batch_size: Annotated[int, typer.Option(
        min=1, help="Local model: problems sampled per generate call.")] = 8,
    system_prompt: Annotated[Optional[str], typer.Option(
        help="System message for the teacher (default: solve step by step, one calculation "
             "per line, end with \"#### <number>\").")] = None,
    concurrency: Concurrency = 8,
    timeout: Timeout = 120.0,
    retries: Retries = 4,
    backoff: Backoff = 1.0,
    rejects: Rejects = None,
    retry_rejected: RetryRejected = False,
) -> None:
    """Generate teacher traces: sample a teacher on each problem, keep the first right trace."""
    with user_errors():
        from rlkd_lite.data.problems import load_problems
        from rlkd_lite.data.resumable import ResumableOutput
        from rlkd_lite.data.teacher import (TEACHER_SYSTEM_PROMPT, ApiTeacher, LocalTeacher,
                                            generate_teacher_traces)
        from rlkd_lite.errors import InputError

        if (model is None) == (api_base is None):
            raise InputError("give exactly one teacher: --model (local) or --api-base (API)")
        # The output first: an unwritable one is refused before problems download.
        check_job_outputs(output, rejects, {"--data": data})
        out = ResumableOutput(output, rejects, retry_rejected=retry_rejected)
        problems = load_problems(data, subset=subset, seed=seed, split=split,
                                 require_trace=False)
        if api_base is not None:
            teacher = ApiTeacher(make_client(api_base, api_model, api_key_env, concurrency,
                                             timeout, retries, backoff),
                                 max_tokens=max_new_tokens, temperature=temperature)
        else:
            import torch

            from rlkd_lite.console import status
            from rlkd_lite.models.loading import load_inference_model

            with status(f"loading teacher {model}"):
                loaded, tokenizer = load_inference_model(model)
            torch.manual_seed(seed)
            teacher = LocalTeacher(loaded, tokenizer, name=model, batch_size=batch_size,
                                   max_new_tokens=max_new_tokens, temperature=temperature)
        summary = generate_teacher_traces(problems, teacher, out, samples=samples,
                                          system_prompt=system_prompt or TEACHER_SYSTEM_PROMPT)
    finish_job("teach", summary)
