"""GPU check of generation in the middle of training (issue 6), on the student's 4-bit
Unsloth model.

    python scripts/gpu_decode_check.py --model-dir DIR [--tokens 128] [--json OUT.json]

1. Modes. The GSRM generates inside the reward with the model in eval mode. A bare generate call
   from there (what the reward did before `keep_training_mode`) is compared with the same call
   through `use_adapter`: gradient checkpointing mode and Unsloth's inference flag afterwards.
2. Decode graphs. 8 chat prompts, greedy, `--tokens` new tokens, with the student adapter (a
   rollout) and with adapters disabled (the bare-base GSRM): Unsloth's eager decode step against
   its CUDA-graph replay for this model type. The tokens must be identical; ms per token and
   Unsloth's replay counters are printed.
3. The GSRM decomposer (few-shot, bare base, 8 rollout-sized reasonings, `--tokens` budget) the
   way the reward calls it: seconds and peak GPU memory, eager and with graphs, and the seconds
   of its prefill (a one-token budget).
4. Scaling: what one decode step costs, with graphs, for 8, 32 and 64 rows (what
   `steps_per_generation` 1, 4 and 8 give the rollouts and the GSRM), each call made as in
   training (the model in training mode, so every call captures its graphs anew): rollouts
   (the question as prompt, student adapter, greedy and sampled) and decompositions (zero-shot
   prompt with a rollout-sized reasoning, gsrm adapter and bare base). A call's seconds are
   split into prefill, the first decode step (eager: it fills the graph's KV cache), the
   second (the graph's capture) and ms per later decode step (replays), from calls of 1, 2, 3
   and `--scaling-tokens` new tokens.
5. Profile: where one GSRM call's time goes (zero-shot, gsrm adapter, 8 rollout-sized
   reasonings, a 4-step limit as from a teacher, `--tokens` budget). A decode step costs
   8-15 ms on an H200, 1.4-2.2x that for 8x the rows: it looks host bound. Forward hooks on the
   causal LM split each step into the model's forward (Unsloth's graph segments and the eager
   attention between them) and the rest of transformers' generate loop (logits processing,
   stopping criteria, cache bookkeeping), on the host clock and with a CUDA sync in each hook;
   torch.profiler then lists the ops with the most host time, the kernels with the most GPU
   time, and the share of the call the GPU was busy.

DIR is a saved model, e.g. the bench's random-init Qwen2.5-1.5B shape (random weights never
emit EOS, so every call runs to the token budget). Exit code 1 when tokens differ or a mode is
not restored.
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
import time
import types
from typing import Any

GIB = 2 ** 30


def _sync() -> None:
    """Wait for the GPU's queued work (nothing to wait for on a CPU)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _with_gsrm_adapter(model: Any) -> None:
    """Add an untrained gsrm adapter (B = 0) beside the student, once: it costs what a trained
    one does."""
    from peft import LoraConfig

    from rlkd_lite.models.adapters import GSRM_ADAPTER, add_frozen_adapter

    if GSRM_ADAPTER not in model.peft_config:
        add_frozen_adapter(model, GSRM_ADAPTER, LoraConfig(r=16, lora_alpha=16, lora_dropout=0.0))


def _timed(fn: Any) -> tuple[Any, float]:
    _sync()
    start = time.perf_counter()
    out = fn()
    _sync()
    return out, time.perf_counter() - start


def check_modes(model: Any, input_ids: Any, attention_mask: Any) -> dict[str, Any]:
    """Checkpointing mode and inference flag before and after an eval-mode generate call."""
    import torch

    from rlkd_lite.models.adapters import use_adapter
    from rlkd_lite.models.generation import gradient_checkpointing_mode, is_unsloth_model

    if not is_unsloth_model(model):  # Unsloth's CPU fallback is plain transformers
        return {"restored": True, "skipped": "not an Unsloth GPU model"}

    def state() -> dict[str, Any]:
        return {"checkpointing": str(gradient_checkpointing_mode(model)),
                "inference_flag": bool(getattr(model, "_flag_for_generation", False)),
                "training": model.training}

    def generate() -> None:
        model.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=4,
                       do_sample=False, use_cache=True)

    before, mode = state(), gradient_checkpointing_mode(model)
    model.eval()  # what use_adapter did, without keep_training_mode
    with torch.no_grad():
        generate()
    model.train()
    bare = state()
    model.for_training(use_gradient_checkpointing=mode)  # the loader's mode, for the next check
    repaired = state()
    with use_adapter(model, None), torch.inference_mode():
        generate()
    through_use_adapter = state()
    return {"before": before, "bare_generate": bare, "before_use_adapter": repaired,
            "use_adapter": through_use_adapter, "restored": through_use_adapter == repaired}


def compare_graphs(model: Any, input_ids: Any, attention_mask: Any, tokens: int,
                   graphs: Any) -> dict[str, Any]:
    """Eager against graph-replayed greedy decoding, with the student adapter and without."""
    import torch

    from rlkd_lite.models.adapters import use_adapter

    base = model.get_base_model()
    results: dict[str, Any] = {}
    for label, adapter in (("student", "default"), ("bare_base", None)):
        outputs, seconds = {}, {}
        for mode, flag in (("eager", False), ("graphs", True)):
            graphs.ENABLED = flag
            with use_adapter(model, adapter), torch.inference_mode():
                def run() -> Any:
                    return model.generate(input_ids=input_ids, attention_mask=attention_mask,
                                          max_new_tokens=tokens, do_sample=False, use_cache=True,
                                          repetition_penalty=1.0)
                run()  # warm-up (graph capture happens here)
                outputs[mode], seconds[mode] = _timed(run)
            results.setdefault(label, {})[f"{mode}_ms_per_token"] = round(
                1000 * seconds[mode] / tokens, 2)
        graphs.ENABLED = None
        same = torch.equal(outputs["eager"], outputs["graphs"])
        results[label]["identical_tokens"] = same
        if not same:
            new = input_ids.shape[1]
            differ = (outputs["eager"][:, new:] != outputs["graphs"][:, new:])
            results[label]["first_difference_at"] = int(differ.int().argmax(-1).min())
        results[label]["unsloth_stats"] = {k: str(v) for k, v in graphs.stats(base).items()}
    return results


def synthetic_problems(n: int, seed: int) -> list[Any]:
    """`n` synthetic problems: the 8 of `seed`, repeated as needed."""
    from rlkd_lite.data.problems import load_problems

    problems = load_problems("synthetic", subset=8, seed=seed)
    return [problems[i % len(problems)] for i in range(n)]


def rollout_sized_items(n: int, seed: int) -> list[Any]:
    """`n` decomposition inputs whose reasoning is rollout-sized: a synthetic problem's trace
    twice (about 250 tokens)."""
    from rlkd_lite.structure.decomposers import DecomposeInput

    return [DecomposeInput(p.question, " ".join([p.reasoning or ""] * 2))
            for p in synthetic_problems(n, seed)]


def question_batch(tokenizer: Any, device: Any, n: int, seed: int = 0) -> tuple[Any, Any]:
    """(input_ids, attention_mask) of `n` chat prompts holding a synthetic question each, as a
    rollout's prompt does."""
    from rlkd_lite.structure.llm import chat_token_ids, left_padded_batches

    ids = chat_token_ids(tokenizer, [[{"role": "user", "content": p.question}]
                                     for p in synthetic_problems(n, seed)])
    _, input_ids, attention_mask = next(left_padded_batches(tokenizer, ids, n, device))
    return input_ids, attention_mask


def time_decomposer(model: Any, tokenizer: Any, tokens: int, graphs: Any) -> dict[str, Any]:
    """The reward's GSRM call on 8 rollout-sized reasonings, eager and with graphs, and the
    seconds of its prefill (a one-token budget)."""
    import torch

    from rlkd_lite.structure.llm import GSRMDecomposer

    items = rollout_sized_items(8, seed=1)
    decomposer = GSRMDecomposer(model, tokenizer, adapter=None, batch_size=8,
                                max_new_tokens=tokens)
    out: dict[str, Any] = {}
    prefill_only = GSRMDecomposer(model, tokenizer, adapter=None, batch_size=8, max_new_tokens=1)
    prefill_only(items)  # warm-up
    out["prefill_and_one_token_s"] = round(_timed(lambda: prefill_only(items))[1], 3)
    for mode, flag in (("eager", False), ("graphs", None)):
        graphs.ENABLED = flag
        decomposer(items)  # warm-up
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        _, seconds = _timed(lambda: decomposer(items))
        out[mode] = {"seconds": round(seconds, 3),
                     "peak_gib": round(torch.cuda.max_memory_allocated() / GIB, 2) if cuda
                     else None}
    graphs.ENABLED = None
    return out


def decode_scaling(model: Any, tokenizer: Any, tokens: int, rows: list[int],
                   repeats: int = 3) -> dict[str, Any]:
    """Prefill, first two decode steps and ms per later decode step, by kind of call and rows.

    Calls of 1, 2, 3 and `tokens` new tokens, the fastest of `repeats` each (one call is too
    noisy to subtract). Unsloth runs the first decode step eagerly (it fills the graph's KV
    cache) and captures the graph on the second; the later steps replay it. The GSRM's seconds
    include building its prompts, as in the reward."""
    import torch

    from rlkd_lite.models.adapters import GSRM_ADAPTER, STUDENT_ADAPTER, use_adapter
    from rlkd_lite.models.generation import decode_graphs
    from rlkd_lite.structure.llm import GSRMDecomposer, chat_token_ids, decomposition_messages

    _with_gsrm_adapter(model)
    lengths = (1, 2, 3, tokens)

    def rollout(n: int, sample: bool) -> tuple[dict[int, Any], int]:
        input_ids, attention_mask = question_batch(tokenizer, model.device, n, seed=2)

        def call(new_tokens: int) -> int:
            with use_adapter(model, STUDENT_ADAPTER), decode_graphs(model), \
                    torch.inference_mode():
                output = model.generate(
                    input_ids=input_ids, attention_mask=attention_mask,
                    max_new_tokens=new_tokens, do_sample=sample,
                    temperature=0.7 if sample else None, repetition_penalty=1.0,
                    use_cache=True, pad_token_id=tokenizer.pad_token_id)
            return output.shape[1] - input_ids.shape[1]
        return {length: functools.partial(call, length) for length in lengths}, \
            input_ids.shape[1]

    def decompose(n: int, adapter: str | None) -> tuple[dict[int, Any], int]:
        items = rollout_sized_items(n, seed=2)
        prompt_tokens = max(len(ids) for ids in chat_token_ids(tokenizer, [
            decomposition_messages(i.question, i.reasoning, False) for i in items]))

        def caller(decomposer: GSRMDecomposer) -> Any:
            def call() -> int:
                decomposer.completions(items)
                return decomposer.last_counts["decode_steps"]
            return call
        return {length: caller(GSRMDecomposer(model, tokenizer, adapter=adapter, batch_size=n,
                                              max_new_tokens=length, few_shot=False))
                for length in lengths}, prompt_tokens

    kinds = {"rollout_greedy": lambda n: rollout(n, False),
             "rollout_sampled": lambda n: rollout(n, True),
             "gsrm_adapter": lambda n: decompose(n, GSRM_ADAPTER),
             "gsrm_bare_base": lambda n: decompose(n, None)}
    out: dict[str, Any] = {}
    for kind, make in kinds.items():
        for n in rows:
            calls, prompt_tokens = make(n)
            calls[tokens]()  # warm-up: compilation, allocator
            seconds, steps = {}, 0
            for length, call in calls.items():
                runs = [_timed(call) for _ in range(repeats)]
                seconds[length] = min(elapsed for _, elapsed in runs)
                steps = runs[0][0]  # decode steps; the last length's is kept
            out.setdefault(kind, {})[f"rows_{n}"] = result = {
                "prompt_tokens": prompt_tokens, "prefill_s": round(seconds[1], 4),
                "first_decode_step_s": round(seconds[2] - seconds[1], 4),
                "second_decode_step_s": round(seconds[3] - seconds[2], 4),
                "decode_steps": steps,
                "ms_per_later_decode_step": round(
                    1000 * (seconds[tokens] - seconds[3]) / max(1, steps - 3), 2)}
            print(kind, n, result, flush=True)
    return out


def profile_decomposer(model: Any, tokenizer: Any, tokens: int, graphs: Any,
                       top: int = 12) -> dict[str, Any]:
    """Where one GSRM call's time goes, per decode step: inside the causal LM's forward against
    the rest of generate, timed by forward hooks twice, on the host clock alone (what the
    host spends) and with a CUDA sync in each hook (GPU work included in the forward, so that
    the rest is host work the GPU waits for). Then the ops with the most host time and the
    kernels with the most GPU time under torch.profiler, which slows a host-bound loop (so the
    split is timed without it). Unsloth's graph counters say whether the calls replayed."""
    import torch
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    from rlkd_lite.models.adapters import GSRM_ADAPTER
    from rlkd_lite.structure.llm import GSRMDecomposer

    _with_gsrm_adapter(model)
    items = rollout_sized_items(8, seed=3)
    # max_steps: the teacher's step count, as in the reward (its stopping criterion runs).
    decomposer = GSRMDecomposer(model, tokenizer, adapter=GSRM_ADAPTER, batch_size=8,
                                max_new_tokens=tokens, max_steps=4, few_shot=False)
    decomposer.completions(items)  # warm-up: compilation, allocator
    cuda = torch.cuda.is_available()
    causal_lm = model.get_base_model()

    def hooked_call(synced: bool) -> dict[str, Any]:
        forward_s: list[float] = []
        started: list[float] = []

        def before(*_: Any) -> None:
            if synced:
                _sync()
            started.append(time.perf_counter())

        def after(*_: Any) -> None:
            if synced:
                _sync()
            forward_s.append(time.perf_counter() - started.pop())
        stats_before = graphs.stats(causal_lm)
        hooks = (causal_lm.register_forward_pre_hook(before),
                 causal_lm.register_forward_hook(after))
        try:
            _, wall = _timed(lambda: decomposer.completions(items))
        finally:
            for hook in hooks:
                hook.remove()
        stats_after = graphs.stats(causal_lm)
        steps = decomposer.last_counts["decode_steps"]
        # forward_s[0] is the prefill, [1] the eager first decode step, [2] the second (a
        # capture, or a replay of graphs kept from the call before: see graph_counts).
        later = forward_s[3:]
        return {
            "wall_s": round(wall, 3), "decode_steps": steps, "forward_calls": len(forward_s),
            "ms_per_step": round(1000 * wall / max(1, steps), 2),
            "prefill_forward_s": round(forward_s[0], 4) if forward_s else None,
            "forward_ms_per_later_step": (round(1000 * sum(later) / len(later), 2) if later
                                          else None),
            # Generate's loop outside the forward, plus building the prompts and decoding
            # the output (a few ms per call), over the decode steps.
            "outside_forward_ms_per_step": round(1000 * (wall - sum(forward_s)) / max(1, steps),
                                                 2),
            "graph_counts": {key: (stats_after[key] - stats_before.get(key, 0)
                                   if isinstance(stats_after[key], int) else stats_after[key])
                             for key in stats_after},
        }
    out: dict[str, Any] = {"rows": len(items), "host_clock": hooked_call(synced=False),
                           "synced": hooked_call(synced=True)}
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        _, profiled_wall = _timed(lambda: decomposer.completions(items))
    events = prof.key_averages()
    # Kernel time counts once: on the kernels, not again on the ops that launched them.
    kernels = [e for e in events if e.device_type == DeviceType.CUDA]

    def table(rows: list[Any], key: Any) -> list[dict[str, Any]]:
        return [{"op": e.key, "calls": e.count,
                 "host_ms": round(e.self_cpu_time_total / 1000, 2),
                 "gpu_ms": round(e.self_device_time_total / 1000, 2)}
                for e in sorted(rows, key=key, reverse=True)[:top]]
    out["profiled_wall_s"] = round(profiled_wall, 3)
    out["top_host_ops"] = table(list(events), lambda e: e.self_cpu_time_total)
    out["gpu_busy_share_profiled"] = (round(sum(e.self_device_time_total for e in kernels)
                                            / 1e6 / profiled_wall, 3) if cuda else None)
    out["top_gpu_kernels"] = (table(kernels, lambda e: e.self_device_time_total) if cuda
                              else None)
    return out


PARTS = ("modes", "graphs", "decomposer", "scaling", "profile")


def _names(allowed: tuple[str, ...]) -> Any:
    def parse(text: str) -> set[str]:
        names = set(text.split(","))
        if names - set(allowed):
            raise argparse.ArgumentTypeError(
                f"unknown {sorted(names - set(allowed))}; choose from {', '.join(allowed)}")
        return names
    return parse


def _at_least(low: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"at least {low}, got {value}")
        return value
    return parse


def _positive_ints(text: str) -> list[int]:
    return [_at_least(1)(part) for part in text.split(",")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", required=True, help="Saved model to load in 4-bit.")
    parser.add_argument("--tokens", type=int, default=128, help="New tokens per generate call.")
    parser.add_argument("--json", help="Also write the results here.")
    parser.add_argument("--parts", type=_names(PARTS), default=",".join(PARTS),
                        help=f"Comma-separated parts to run: {', '.join(PARTS)}.")
    parser.add_argument("--scaling-tokens", type=_at_least(8), default=64,
                        help="New tokens of the longest call in the scaling part (at least 8).")
    parser.add_argument("--scaling-rows", type=_positive_ints, default="8,32,64",
                        help="Comma-separated batch sizes of the scaling part.")
    parser.add_argument("--max-seq-length", type=int, default=2048,
                        help="Sequence length the model is loaded for.")
    args = parser.parse_args()  # bad flags are refused here, before minutes of model loading

    from rlkd_lite.models.loading import LoraSettings, load_student

    model, tokenizer = load_student(
        args.model_dir, backend="unsloth", max_seq_length=args.max_seq_length,
        decode_graphs=True,
        lora=LoraSettings(16, 16, 0.0, ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                         "up_proj", "down_proj")))
    # Loaded by Unsloth's GPU models; absent on a CPU machine, where decoding is eager anyway.
    graphs = sys.modules.get("unsloth.models._decode_graphs") or types.SimpleNamespace(
        ENABLED=None, stats=lambda model: {})

    from rlkd_lite.data.jsonl import write_json_atomic

    input_ids, attention_mask = question_batch(tokenizer, model.device, 8)

    report: dict[str, Any] = {}
    parts = (("modes", lambda: check_modes(model, input_ids, attention_mask)),
             ("graphs", lambda: compare_graphs(model, input_ids, attention_mask, args.tokens,
                                               graphs)),
             ("decomposer", lambda: time_decomposer(model, tokenizer, args.tokens, graphs)),
             ("scaling", lambda: decode_scaling(model, tokenizer, args.scaling_tokens,
                                                args.scaling_rows)),
             ("profile", lambda: profile_decomposer(model, tokenizer, args.tokens, graphs)))
    for name, part in parts:  # each part is printed and saved as soon as it is done
        if name not in args.parts:
            continue
        report[name] = part()
        print(json.dumps({name: report[name]}, indent=2), flush=True)
        if args.json:
            write_json_atomic(args.json, report)
    ok = report.get("modes", {"restored": True})["restored"] and all(
        r["identical_tokens"] for r in report.get("graphs", {}).values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
