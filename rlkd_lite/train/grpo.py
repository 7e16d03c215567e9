"""RLKD and its GRPO baseline on TRL's GRPOTrainer.

`rlkd` trains on accuracy, format, tag count and the structure reward; `grpo` on the outcome
rewards only (the paper's RL baseline). Everything else — model, data, sampling, optimiser —
is the same, so the two runs compare the structure reward and nothing else.
"""
from __future__ import annotations

import hashlib
from typing import Any

from rlkd_lite.console import console, status
from rlkd_lite.data.problems import Problem, problems_to_rows
from rlkd_lite.errors import RlkdError
from rlkd_lite.models.adapters import GSRM_ADAPTER
from rlkd_lite.models.loading import adapter_dir, trainer_precision_args
from rlkd_lite.structure.decomposers import DecomposeInput, make_decomposer
from rlkd_lite.structure.judges import make_judge
from rlkd_lite.structure.steps import steps_to_json
from rlkd_lite.train.callbacks import RunLogCallback, drop_printer, run_callbacks
from rlkd_lite.train.config import RunConfig
from rlkd_lite.train.rewards import LastBatch, build_reward_functions
from rlkd_lite.train.run_dir import RunDir, is_main_process
from rlkd_lite.train.teacher_cache import decompose_teachers


def build_decomposer(name: str, config: RunConfig, model: Any, tokenizer: Any) -> tuple[Any, str]:
    """A decomposer and its identity for the teacher cache (model and adapter included)."""
    if name != "gsrm":
        return make_decomposer(name), name
    adapter = GSRM_ADAPTER if config.gsrm_adapter else None
    decomposer = make_decomposer("gsrm", model=model, tokenizer=tokenizer, adapter=adapter,
                                 batch_size=config.gsrm_batch_size,
                                 max_new_tokens=config.gsrm_max_new_tokens)
    # Everything that changes what it writes: the weights (by content: a retrained adapter at
    # the same path differs, a moved one does not) and the token room (a budget too small for a
    # prompt gives no steps).
    weights = (f"adapter@{adapter_digest(config.gsrm_adapter)}" if config.gsrm_adapter
               else "few-shot")
    return decomposer, (f"gsrm:{config.model}:{weights}:{config.max_seq_length}:"
                        f"{config.gsrm_max_new_tokens}")


def adapter_digest(path: str) -> str:
    """A short hash of a saved adapter's files (config and weights)."""
    folder = adapter_dir(path)
    digest = hashlib.sha256()
    for name in sorted(p.name for p in folder.iterdir() if p.is_file()):
        digest.update(name.encode("utf-8"))
        digest.update((folder / name).read_bytes())
    return digest.hexdigest()[:16]


def build_judge(config: RunConfig, model: Any, tokenizer: Any) -> Any:
    if config.judge != "llm":
        return make_judge(config.judge)
    return make_judge("llm", model=model, tokenizer=tokenizer,
                      adapter=GSRM_ADAPTER if config.gsrm_adapter else None,
                      batch_size=config.judge_batch_size)


def teacher_steps_json(problems: list[Problem], decomposer: Any, decomposer_id: str,
                       run: RunDir, batch_size: int) -> list[str]:
    """Teacher traces go through `decomposer` (by default the rollouts' own, so that both sides
    are segmented alike) once, cached; given steps are used only where there is no text."""
    todo = [p for p in problems if p.reasoning]
    decomposed = {}
    if todo:
        from accelerate import PartialState

        # In a distributed run the main process decomposes and caches first; the other ranks
        # then find every trace in the cache instead of decomposing all of them again.
        with status(f"decomposing {len(todo)} teacher traces ({decomposer_id})"), \
                PartialState().main_process_first():
            steps = decompose_teachers(
                [DecomposeInput(p.question, p.reasoning or "") for p in todo], decomposer,
                decomposer_id, run.cache / "teacher_steps.jsonl", batch_size=batch_size,
                write_cache=is_main_process())
        decomposed = {p.id: s for p, s in zip(todo, steps)}
        empty = sum(1 for s in steps if not s)
        if empty:
            console.print(f"[yellow]warning:[/] {empty} of {len(todo)} teacher traces gave no "
                          f"steps; their structure reward is always 0")
    return [steps_to_json(decomposed[p.id] if p.reasoning else p.steps or []) for p in problems]


def prompts_that_fit(rows: list[dict], tokenizer: Any, config: RunConfig) -> list[int]:
    """The indices of the rows whose prompt is at most max_prompt_length tokens (GRPOConfig has
    no prompt-length bound any more). The longest prompt kept plus a full completion must fit
    in max_seq_length: Unsloth refuses a longer sequence in the middle of the run."""
    lengths = [len(tokenizer.apply_chat_template(
        r["prompt"], add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"])
        for r in rows]
    kept = [i for i, n in enumerate(lengths) if n <= config.max_prompt_length]
    if len(kept) < len(rows):
        console.print(f"[yellow]warning:[/] dropped {len(rows) - len(kept)} problems whose "
                      f"prompt exceeds max_prompt_length={config.max_prompt_length} tokens")
    longest = max((lengths[i] for i in kept), default=0)
    if longest + config.max_completion_length > config.max_seq_length:
        raise RlkdError(f"the longest prompt ({longest} tokens) plus max_completion_length "
                        f"({config.max_completion_length}) exceeds max_seq_length "
                        f"({config.max_seq_length}): raise max_seq_length or lower "
                        f"max_prompt_length or max_completion_length")
    # TRL draws whole generations of distinct prompts; with fewer it trains 0 steps, silently.
    needed = config.rollouts_per_generation() // config.num_generations
    if len(kept) < needed:
        raise RlkdError(f"{len(kept)} usable problem(s), but one generation needs {needed} "
                        f"distinct prompts (per_device_train_batch_size × steps_per_generation "
                        f"÷ num_generations): use more problems (subset) or a smaller batch")
    return kept


def grpo_args(config: RunConfig, run: RunDir, weights: list[float]) -> Any:
    from trl import GRPOConfig

    return GRPOConfig(
        output_dir=str(run.checkpoints), max_steps=config.max_steps,
        learning_rate=config.learning_rate, lr_scheduler_type=config.lr_scheduler_type,
        warmup_steps=config.warmup_ratio, weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        per_device_train_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        steps_per_generation=config.steps_per_generation,
        num_generations=config.num_generations,
        max_completion_length=config.max_completion_length, temperature=config.temperature,
        beta=config.beta, loss_type=config.loss_type, reward_weights=weights, seed=config.seed,
        logging_steps=config.logging_steps, save_strategy="steps", save_steps=config.save_steps,
        save_total_limit=config.save_total_limit, report_to=[], disable_tqdm=True,
        remove_unused_columns=False, **trainer_precision_args(config.backend))


def build_grpo_trainer(config: RunConfig, model: Any, tokenizer: Any, problems: list[Problem],
                       run: RunDir) -> tuple[Any, RunLogCallback]:
    from datasets import Dataset
    from trl import GRPOTrainer

    weights = config.active_rewards()
    decomposer = judge = None
    rows = problems_to_rows(problems, config.system_prompt)
    # Before the teacher traces are decomposed: a run that cannot start fails at once.
    kept = prompts_that_fit(rows, tokenizer, config)
    problems, rows = [problems[i] for i in kept], [rows[i] for i in kept]
    if "structure" in weights:
        decomposer, _ = build_decomposer(config.decomposer, config, model, tokenizer)
        judge = build_judge(config, model, tokenizer)
        teacher_decomposer, teacher_id = build_decomposer(
            config.teacher_decomposer or config.decomposer, config, model, tokenizer)
        for row, steps in zip(rows, teacher_steps_json(problems, teacher_decomposer, teacher_id,
                                                       run, config.gsrm_batch_size)):
            row["teacher_steps"] = steps
    last = LastBatch()
    reward_funcs, reward_weights = build_reward_functions(
        weights, last=last, answer_format=config.answer_format, decomposer=decomposer,
        judge=judge, normalize=config.normalize_structure)
    run_log, callbacks = run_callbacks(run, last, config, config.method)
    trainer = GRPOTrainer(
        model=model, processing_class=tokenizer, reward_funcs=reward_funcs,
        args=grpo_args(config, run, reward_weights), train_dataset=Dataset.from_list(rows),
        callbacks=callbacks)
    drop_printer(trainer)
    run_log.clock.attach(trainer)
    return trainer, run_log
