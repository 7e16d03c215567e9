"""The SFT baseline: plain supervised distillation on the teacher traces (TRL's SFTTrainer).

The target is the teacher's reasoning in the recipe's answer format (e.g. `<think>…</think>`
then `#### answer`), so that an SFT adapter can start a GRPO/RLKD run (`init_adapter`) and be scored
by the same format and accuracy rewards. The loss covers the completion only; a conversation
longer than max_seq_length is left out (and counted), not truncated.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rlkd_lite.console import console
from rlkd_lite.data.problems import Problem, problems_to_rows
from rlkd_lite.errors import RlkdError
from rlkd_lite.models.loading import trainer_precision_args
from rlkd_lite.train.callbacks import RunLogCallback, drop_printer, run_callbacks
from rlkd_lite.train.config import RunConfig
from rlkd_lite.train.rewards import render_target
from rlkd_lite.train.run_dir import RunDir
from rlkd_lite.structure.steps import render_steps


def sft_rows(problems: list[Problem], system_prompt: str, answer_format: str) -> list[dict]:
    rows = problems_to_rows(problems, system_prompt)
    return [{"prompt": row["prompt"],
             "completion": [{"role": "assistant", "content": render_target(
                 p.reasoning or render_steps(p.steps or []), p.answer, answer_format)}]}
            for row, p in zip(rows, problems)]


def build_sft_trainer(config: RunConfig, model: Any, tokenizer: Any, problems: list[Problem],
                      run: RunDir) -> tuple[Any, RunLogCallback]:
    rows = sft_rows(problems, config.system_prompt, config.answer_format)
    kept = rows_that_fit(tokenizer, rows, config.max_seq_length)
    console.print(f"sft: {len(kept)} training examples ({len(rows) - len(kept)} longer than "
                  f"{config.max_seq_length} tokens left out)", highlight=False)
    return build_completion_trainer(config, model, tokenizer, kept, run, "sft")


def conversation_lengths(tokenizer: Any, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Tokens of each row's whole conversation (prompt and completion), as the trainer sees it."""
    texts = [tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=False,
                                           **row.get("chat_template_kwargs", {}))
             for row in rows]
    # verbose=False: lengths over the model's maximum are what we are looking for, not news.
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False,
                                          verbose=False)["input_ids"]]


def rows_that_fit(tokenizer: Any, rows: Sequence[dict[str, Any]], max_seq_length: int
                  ) -> list[dict[str, Any]]:
    """The rows whose whole conversation fits in `max_seq_length` tokens; RlkdError if none.

    The trainer would truncate the others, cutting the end of the completion (SFT's `#### N`
    line, the GSRM's last steps) and teaching the model to stop mid-way: they are left out."""
    lengths = conversation_lengths(tokenizer, rows)
    kept = [row for row, length in zip(rows, lengths) if length <= max_seq_length]
    if not kept:
        raise RlkdError(f"every training example is longer than max_seq_length "
                        f"({max_seq_length} tokens)")
    return kept


def build_completion_trainer(config: RunConfig, model: Any, tokenizer: Any, rows: list[dict],
                             run: RunDir, title: str) -> tuple[Any, RunLogCallback]:
    """TRL's SFTTrainer on conversational prompt/completion `rows`, loss on the completion only,
    with the config's optimisation settings and the run's logs and progress bar (`title`).
    Shared by the SFT baseline and the GSRM adapter's training."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(
        output_dir=str(run.checkpoints), max_steps=config.max_steps,
        num_train_epochs=config.num_train_epochs, learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler_type, warmup_steps=config.warmup_ratio,
        weight_decay=config.weight_decay, max_grad_norm=config.max_grad_norm,
        per_device_train_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        max_length=config.max_seq_length, completion_only_loss=True, seed=config.seed,
        logging_steps=config.logging_steps, save_strategy="steps", save_steps=config.save_steps,
        save_total_limit=config.save_total_limit, report_to=[], disable_tqdm=True,
        **trainer_precision_args(config.backend))
    run_log, callbacks = run_callbacks(run, None, config, title)
    trainer = SFTTrainer(model=model, processing_class=tokenizer, args=args,
                         train_dataset=Dataset.from_list(rows), callbacks=callbacks)
    drop_printer(trainer)
    return trainer, run_log
