"""GPU check of the GSRM adapter: `gsrm train` for a few steps (the GSRM recipe: 4-bit base,
Unsloth backend), then the trained gsrm decomposer's generation throughput on one batch of traces.

    python scripts/gpu_gsrm_check.py --model-dir DIR [--steps 3] [--traces 64] [--json OUT.json]
                                     [--set FIELD=VALUE ...]

DIR is a saved model, e.g. a random-init Qwen2.5-1.5B shape from
`rlkd_lite.models.tiny.build_tiny_qwen2` (random weights never emit EOS, so every decomposition
runs to the token budget: right for timing, meaningless for quality). The project's GPU script
calls `check_gsrm(model_dir, work_dir)`. It prints, and returns: step time (first step, which
includes compilation, and the median of the others), peak GPU memory during training and during
decomposition (torch.cuda.max_memory_allocated), and decomposer tokens/s. On a machine without
a GPU it runs the same way (use a tiny model) and reports no memory numbers.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from rlkd_lite.data.jsonl import write_json_atomic
from rlkd_lite.data.problems import load_problems
from rlkd_lite.data.resumable import ResumableOutput
from rlkd_lite.train.config import parse_set_overrides
from rlkd_lite.train.gsrm import (GsrmTrainConfig, label_with_rules, load_gsrm_config,
                                  read_label_examples, train_gsrm)
from rlkd_lite.train.run_dir import RunDir

HELD_OUT = 8
"""Examples the run decomposes for its own evaluation (which also warms up generation)."""
GIB = 2 ** 30


def check_gsrm(model_dir: str | Path, work_dir: str | Path, *, recipe: str = "gsrm-qwen2.5-1.5b",
               steps: int = 3, traces: int = 64, overrides: dict[str, Any] | None = None
               ) -> dict[str, Any]:
    """Train the gsrm adapter on `model_dir` for `steps` steps, time its decomposer on a batch
    of `traces` traces; print and return the numbers. `overrides` are recipe fields."""
    import torch

    from rlkd_lite.models.loading import prepare_backend

    work = Path(work_dir)
    labels = work / "labels.jsonl"
    count = traces + HELD_OUT
    label_with_rules(load_problems("synthetic", subset=count), ResumableOutput(labels))
    config = load_gsrm_config(recipe, {
        "model": str(model_dir), "examples": str(labels), "output_dir": str(work / "run"),
        "max_steps": steps, "save_steps": steps, "logging_steps": 1, "held_out": HELD_OUT / count,
        **(overrides or {})})
    prepare_backend(config.backend)  # Unsloth must patch transformers before it is imported
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()

    result = train_gsrm(config)
    step_times = [row["step_time_s"] for row in RunDir(result.run_dir).metric_rows()]
    train_peak = torch.cuda.max_memory_allocated() / GIB if cuda else None

    examples = read_label_examples(labels)[:traces]
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    tokens, seconds = _decompose_timed(result.model, result.tokenizer, examples, config)
    numbers = {
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "backend": config.backend, "load_in_4bit": config.load_in_4bit,
        "lora_rank": config.lora_rank, "steps": result.steps,
        "batch": config.per_device_train_batch_size * config.gradient_accumulation_steps,
        "first_step_s": step_times[0],
        "median_step_s": statistics.median(step_times[1:] or step_times),
        "train_peak_gib": train_peak,
        "decompose_traces": len(examples), "decompose_max_new_tokens": config.gsrm_max_new_tokens,
        "decompose_tokens": tokens, "decompose_s": seconds,
        "decompose_tokens_per_s": tokens / seconds,
        "decompose_peak_gib": torch.cuda.max_memory_allocated() / GIB if cuda else None,
        "held_out_eval": result.evaluation,
    }
    print(f"[gsrm] {numbers['device']}, {config.backend}, "
          f"{'4-bit' if config.load_in_4bit else 'full precision'}, LoRA r{config.lora_rank}: "
          f"{result.steps} steps of {numbers['batch']} examples; first step "
          f"{numbers['first_step_s']:.2f} s, median step {numbers['median_step_s']:.2f} s; "
          f"peak GPU memory {_gib(train_peak)} in training")
    print(f"[gsrm] decomposer: {tokens} tokens for {len(examples)} traces in one batch "
          f"({config.gsrm_max_new_tokens} max new tokens) in {seconds:.2f} s = "
          f"{tokens / seconds:.0f} tokens/s; peak GPU memory {_gib(numbers['decompose_peak_gib'])}")
    print("[gsrm] " + json.dumps(numbers))
    return numbers


def _decompose_timed(model: Any, tokenizer: Any, examples: list, config: GsrmTrainConfig
                     ) -> tuple[int, float]:
    """(generated tokens, seconds) of one gsrm decomposer call over `examples`, in one batch."""
    import torch

    from rlkd_lite.structure.decomposers import DecomposeInput
    from rlkd_lite.structure.llm import GSRMDecomposer

    decomposer = GSRMDecomposer(model, tokenizer, adapter="default", few_shot=False,
                                batch_size=len(examples), max_new_tokens=config.gsrm_max_new_tokens)
    generated = 0
    generate = model.generate

    def counting_generate(*args: Any, **kwargs: Any) -> Any:
        # New tokens that are not padding (padding follows a row that has ended).
        nonlocal generated
        output = generate(*args, **kwargs)
        new = output[:, kwargs["input_ids"].shape[1]:]
        generated += int((new != tokenizer.pad_token_id).sum())
        return output

    model.generate = counting_generate
    try:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        decomposer([DecomposeInput(e.question, e.reasoning) for e in examples])
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return generated, time.perf_counter() - start
    finally:
        model.generate = generate


def _gib(value: float | None) -> str:
    return "n/a (no GPU)" if value is None else f"{value:.2f} GiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", required=True,
                        help="Saved model directory (config, weights, tokenizer).")
    parser.add_argument("--work-dir", help="Where labels and the run go (default: a temp dir).")
    parser.add_argument("--recipe", default="gsrm-qwen2.5-1.5b", help="GSRM recipe.")
    parser.add_argument("--steps", type=int, default=3, help="Training steps.")
    parser.add_argument("--traces", type=int, default=64, help="Traces decomposed in one batch.")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="FIELD=VALUE", help="Override a recipe field (repeatable).")
    parser.add_argument("--json", help="Also write the numbers to this JSON file.")
    args = parser.parse_args()
    overrides = parse_set_overrides(args.overrides, GsrmTrainConfig)
    with tempfile.TemporaryDirectory(prefix="gsrm-check-") as temp:
        numbers = check_gsrm(args.model_dir, args.work_dir or temp, recipe=args.recipe,
                             steps=args.steps, traces=args.traces, overrides=overrides)
    if args.json:
        write_json_atomic(args.json, numbers)


if __name__ == "__main__":
    main()
