"""One training run, top to bottom: `run_training(config)` is what `rlkd-lite train` calls.

    1. check the config and load the problems      (bad input fails here, before any model)
    2. lock and prepare the run directory          (refuses to mix runs; `resume` continues one)
    3. load the student: base (4-bit unless load_in_4bit: false) + LoRA `default`
       (+ frozen `gsrm` adapter)
    4. sft:  supervised distillation on the teacher traces             -> train/sft.py
       rlkd/grpo: decompose the teacher traces once (cached), build the rewards, run TRL's
       GRPOTrainer (Unsloth's patched one on GPU)                       -> train/grpo.py
    5. save the student adapter (safetensors) and summary.json; after Ctrl-C too, marked
       `interrupted` (the adapter is then the student at the step it stopped at)

How this departs from the paper's setup: the GSRM is a LoRA adapter on the student's own base
swapped in inside the reward function (the authors ran two separate 7B vLLM servers), the judge
reads yes/no next-token probabilities in batched forward passes instead of sampling text, and
the student trains a LoRA adapter on a 4-bit base instead of full fine-tuning.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlkd_lite.console import console, status
from rlkd_lite.data.jsonl import write_json_atomic
from rlkd_lite.data.problems import Problem, load_problems
from rlkd_lite.errors import InputError, RlkdError
from rlkd_lite.models.checkpoints import checkpoint_step
from rlkd_lite.models.registry import check_model
from rlkd_lite.train.config import RunConfig
from rlkd_lite.train.run_dir import RunDir, is_main_process


@dataclass
class RunResult:
    run_dir: Path
    steps: int
    seconds: float
    last_metrics: dict[str, Any]
    gsrm_unchanged: bool | None
    """True when the frozen gsrm adapter's weights are bit-identical after training."""
    interrupted: bool = False
    """Stopped by Ctrl-C before max_steps, after saving a checkpoint to resume from."""
    model: Any = field(default=None, repr=False)
    """The trained PeftModel, still in memory (for evaluation in the same notebook or process)."""
    tokenizer: Any = field(default=None, repr=False)


def load_run_problems(config: RunConfig) -> list[Problem]:
    problems = load_problems(config.data, subset=config.subset, seed=config.seed,
                             teacher=config.teacher)
    if not problems:
        raise RlkdError(f"no problems in {config.data}")
    missing = [p.id for p in problems if not p.reasoning and not p.steps]
    if missing and config.method in ("rlkd", "sft"):
        raise RlkdError(f"{config.method} needs a teacher trace per problem; none for "
                        f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    return problems


@contextlib.contextmanager
def open_run(config: RunConfig, *, resume: bool) -> Iterator[tuple[RunDir, Path | None]]:
    """The run directory, locked for this process and prepared, and the checkpoint to resume
    from (None for a new run)."""
    run = RunDir(Path(config.output_dir))
    with run.locked():
        checkpoint = run.last_checkpoint() if resume else None
        if checkpoint is not None:
            from rlkd_lite.models.adapters import check_saved_adapter
            from rlkd_lite.models.checkpoints import sub_adapters
            from rlkd_lite.models.loading import adapter_dir

            # A damaged adapter fails here, before the model loads: the student's, and the
            # others (gsrm) that the Trainer loads again from the checkpoint on resume.
            adapter_dir(checkpoint)
            for folder in sub_adapters(checkpoint):
                check_saved_adapter(folder)
        if is_main_process():  # not the other ranks of a distributed run: rank 0 sets it up
            run.prepare(config.to_dict(), resume=resume, path_fields=config.PATH_FIELDS)
            if resume and checkpoint is None:
                console.print(f"[yellow]warning:[/] no checkpoint in {run.path} yet: starting "
                              f"from step 0")
            # The logs describe one run: lines past the checkpoint it restarts from (all of
            # them when it starts afresh, e.g. after a crash before the first checkpoint) go.
            run.forget_after(checkpoint_step(checkpoint))
        yield run, checkpoint


def train_from(trainer: Any, checkpoint: Path | None, max_steps: int, run: RunDir) -> int:
    """Train up to `max_steps` from `checkpoint` (None: from the start); the steps done.
    A finished run that is resumed trains no further (the Trainer would take one more step)."""
    if checkpoint is None:
        trainer.train()
        return trainer.state.global_step
    from rlkd_lite.models.adapters import STUDENT_ADAPTER
    from rlkd_lite.models.loading import load_adapter_weights

    # The Trainer restores optimizer, scheduler and step; but with a second adapter saved in a
    # sub-folder, transformers 5.17 reloads only the sub-folders and skips the student's own
    # weights at the checkpoint root, so they are loaded here (for a finished run, to be saved).
    load_adapter_weights(trainer.model, checkpoint, STUDENT_ADAPTER)
    console.print(f"resuming from {checkpoint}")
    done = checkpoint_step(checkpoint)
    if done >= max_steps:
        console.print(f"{run.path} has trained {done} of max_steps {max_steps} steps already: "
                      f"nothing to train")
        return done
    trainer.train(resume_from_checkpoint=str(checkpoint))
    return trainer.state.global_step


def load_config_model(config: RunConfig, *, gsrm_adapter: str | None = None) -> tuple[Any, Any]:
    """The base (4-bit unless `load_in_4bit` is false) with the trainable `default` adapter
    the config describes (+ gsrm)."""
    from rlkd_lite.models.loading import LoraSettings, load_student

    with status(f"loading {config.model} ({config.backend}, "
                f"{'4-bit' if config.load_in_4bit else 'full precision'})"):
        return load_student(
            config.model, backend=config.backend, max_seq_length=config.max_seq_length,
            load_in_4bit=config.load_in_4bit, seed=config.seed, init_adapter=config.init_adapter,
            gsrm_adapter=gsrm_adapter, trust_remote_code=config.trust_remote_code,
            decode_graphs=config.decode_graphs,
            lora=LoraSettings(config.lora_rank, config.lora_alpha, config.lora_dropout,
                              tuple(config.lora_target_modules)))


def check_run_config(config: RunConfig) -> None:
    """What can be checked before data, model or run directory are touched; `train --dry-run`
    checks the same. The paths the run reads (adapters, input files) are checked here, not in
    `validate`: a finished run's config.yaml is read again (eval) where they need not exist any
    more."""
    config.validate()
    for adapter in (getattr(config, name) for name in config.LOADED_ADAPTERS):
        if adapter:
            from rlkd_lite.models.loading import adapter_dir

            adapter_dir(adapter)  # raises RlkdError naming what it expected to find
    for name, file in config.input_files().items():
        path = Path(file).expanduser()
        if not path.is_file():
            why = "a directory, not a file" if path.is_dir() else "no such file"
            raise InputError(f"{file}: {why}", field=name)
    check_model(config.model, config.load_in_4bit)


def run_training(config: RunConfig, *, resume: bool = False) -> RunResult:
    check_run_config(config)
    problems = load_run_problems(config)
    with open_run(config, resume=resume) as (run, checkpoint):
        return _train(config, problems, run, checkpoint)


def _train(config: RunConfig, problems: list[Problem], run: RunDir,
           checkpoint: Path | None) -> RunResult:
    from rlkd_lite.models.adapters import GSRM_ADAPTER

    model, tokenizer = load_config_model(config, gsrm_adapter=config.gsrm_adapter)
    fingerprint = None
    if config.gsrm_adapter:
        from rlkd_lite.models.adapters import adapter_state_fingerprint

        fingerprint = adapter_state_fingerprint(model, GSRM_ADAPTER)

    start = time.perf_counter()
    if config.method == "sft":
        from rlkd_lite.train.sft import build_sft_trainer

        trainer, run_log = build_sft_trainer(config, model, tokenizer, problems, run)
    else:
        from rlkd_lite.train.grpo import build_grpo_trainer

        trainer, run_log = build_grpo_trainer(config, model, tokenizer, problems, run)
    steps = train_from(trainer, checkpoint, config.max_steps, run)
    seconds = time.perf_counter() - start
    interrupted = was_interrupted(trainer) and steps < config.max_steps
    last_metrics = run_log.latest or next(reversed(run.metric_rows()), {})

    unchanged = None
    if fingerprint is not None:
        from rlkd_lite.models.adapters import adapter_state_fingerprint

        unchanged = adapter_state_fingerprint(model, GSRM_ADAPTER) == fingerprint
    if is_main_process():  # every rank holds the same adapter; one writes it
        # Interrupted too: the student at its last step is usable as it is (eval, SFT->RLKD).
        save_student_adapter(model, run.adapter)
        write_json_atomic(run.path / "summary.json", {
            "method": config.method, "steps": steps, "max_steps": config.max_steps,
            "interrupted": interrupted, "seconds": round(seconds, 2),
            "gsrm_unchanged": unchanged, "last_metrics": last_metrics})
    return RunResult(run.path, steps, seconds, last_metrics, unchanged, interrupted=interrupted,
                     model=model, tokenizer=tokenizer)


def was_interrupted(trainer: Any) -> bool:
    """Whether Ctrl-C stopped the training (GracefulInterrupt, one of `run_callbacks`)."""
    from rlkd_lite.train.callbacks import GracefulInterrupt

    return any(isinstance(callback, GracefulInterrupt) and callback.requested
               for callback in trainer.callback_handler.callbacks)


def save_student_adapter(model: Any, out: Path) -> None:
    """Only the student adapter, as safetensors: saved beside `out`, then the old adapter
    moved aside and the new one renamed into place."""
    import shutil

    from rlkd_lite.models.adapters import STUDENT_ADAPTER

    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp), selected_adapters=[STUDENT_ADAPTER], safe_serialization=True)
    old = out.with_name(out.name + ".old")
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)
