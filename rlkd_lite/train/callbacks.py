"""Trainer callbacks: metrics and sample logs, a rich progress bar, and a clean Ctrl-C."""
from __future__ import annotations

import operator
import signal
import time
from typing import Any

from transformers import TrainerCallback

from rlkd_lite.structure.steps import render_steps
from rlkd_lite.train.rewards import LastBatch
from rlkd_lite.train.run_dir import RunDir, is_main_process


class StageClock:
    """Seconds and peak GPU memory per stage of a step, measured by wrapping the trainer's own
    methods (TRL's; Unsloth's rewrite keeps the names). `rollout` is the whole generation batch:
    generation, the reference (and, off-policy, old) log-probs and the rewards, which are also
    timed on their own inside it; the rest of the step is the training pass. Memory peaks are
    GiB allocated by torch; a peak inside a stage counts for every stage it is nested in."""

    STAGES = {"rollout": "_generate_and_score_completions",
              "generate": "_generate_single_turn", "rewards": "_calculate_rewards"}

    def __init__(self) -> None:
        import torch

        self.cuda = torch.cuda if torch.cuda.is_available() else None
        self._open: list[str] = []
        self._clear()

    def _clear(self) -> None:
        self.seconds = dict.fromkeys(self.STAGES, 0.0)
        self.peaks = dict.fromkeys(self.STAGES, 0.0)
        self.calls = dict.fromkeys(self.STAGES, 0)
        self.step_peak = 0.0

    def attach(self, trainer: Any) -> None:
        for stage, method in self.STAGES.items():
            original = getattr(trainer, method, None)
            if original is not None:
                setattr(trainer, method, self._timed(stage, original))

    def _read_peak(self) -> None:
        """Fold the peak since the last read into the step and the stages open now."""
        if self.cuda is None:
            return
        peak = self.cuda.max_memory_allocated() / 2**30
        self.cuda.reset_peak_memory_stats()
        self.step_peak = max(self.step_peak, peak)
        for stage in self._open:
            self.peaks[stage] = max(self.peaks[stage], peak)

    def _timed(self, stage: str, function: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._read_peak()  # what came before belongs to the stages around, not this one
            self._open.append(stage)
            self.calls[stage] += 1
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - start
                try:
                    self._read_peak()
                finally:
                    self._open.remove(stage)
        return timed

    def begin_step(self) -> None:
        self._read_peak()
        self._clear()

    def take(self) -> dict[str, float]:
        """This step's numbers (`rollout_s`, `generate_s`, `rewards_s`, and with a GPU
        `peak_gib` and each stage's `..._peak_gib`), then start over."""
        self._read_peak()
        taken = {f"{stage}_s": value for stage, value in self.seconds.items()}
        if self.cuda is not None:
            taken["peak_gib"] = self.step_peak
            taken.update({f"{stage}_peak_gib": value for stage, value in self.peaks.items()})
        self._clear()
        return taken


class RunLogCallback(TrainerCallback):
    """Writes metrics.jsonl (every log) and samples.jsonl (every `sample_every` steps); in a
    distributed run only the main process writes (every process keeps `latest`).

    Step time is measured here (wall clock from step begin to step end, generation included)
    so it means the same for GRPO and SFT. A row covers the steps since the last one
    (`logging_steps`), as TRL's own metrics (window means) do: `step_time_s` and the stage
    times are means per step, the stage peaks the highest. When the steps generated, the row
    has their completion tokens on this device (`completion_tokens`: all the rollouts of their
    generations, which with steps_per_generation serve several steps) and those tokens per
    second of the steps' time (`tokens_per_s`).
    """

    def __init__(self, run: RunDir, last: LastBatch | None, *, completions_per_generation: int,
                 sample_every: int, samples_per_log: int):
        self.run, self.last = run, last
        self.completions_per_generation = completions_per_generation
        self.sample_every, self.samples_per_log = sample_every, samples_per_log
        self._step_start = time.perf_counter()
        self.clock = StageClock()
        self._new_window()
        self.latest: dict[str, Any] = {}
        self._sampled: list[str] | None = None  # the batch whose samples were written last

    def on_step_begin(self, args, state, control, **kwargs):
        self.clock.begin_step()
        self._step_start = time.perf_counter()

    def _new_window(self) -> None:
        """Start the totals of the steps that the next log row covers."""
        self.steps, self.seconds, self.generations = 0, 0.0, 0
        self.stages: dict[str, float] = {}

    def on_step_end(self, args, state, control, **kwargs):
        # The last steps make a row too, when max_steps is no multiple of logging_steps.
        if state.global_step >= state.max_steps:
            control.should_log = True
        self.steps += 1
        self.seconds += time.perf_counter() - self._step_start
        # More than one when steps_per_generation is below gradient_accumulation_steps.
        self.generations += self.clock.calls["rollout"]
        for key, value in self.clock.take().items():
            merge = max if key.endswith("_gib") else operator.add
            self.stages[key] = merge(self.stages.get(key, 0.0), value)
        # Steps that share a generation (steps_per_generation) share its batch: write it once.
        last = self.last
        if state.is_world_process_zero and last is not None and last.completions and (
                last.completions is not self._sampled) and (
                state.global_step % self.sample_every == 0 or state.global_step == 1):
            self._write_samples(state.global_step)
            self._sampled = self.last.completions

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        # The end-of-training summary and evaluations are no training steps.
        if "train_runtime" in logs or any(key.startswith("eval_") for key in logs):
            return
        steps = max(1, self.steps)
        row: dict[str, Any] = {"step": state.global_step,
                               "step_time_s": round(self.seconds / steps, 4)}
        if any(self.stages.values()):
            row.update({k: round(v if k.endswith("_gib") else v / steps, 4)
                        for k, v in self.stages.items()})
        for key, value in logs.items():
            if key.startswith("rewards/") and key.endswith("/mean"):
                row[key[len("rewards/"):-len("/mean")]] = value
            elif key in ("reward", "loss", "grad_norm", "learning_rate", "kl", "entropy"):
                row[key] = value
            elif key.startswith("structure/"):
                row[key.replace("/", "_")] = value
        length = logs.get("completions/mean_length")
        if length is not None and self.seconds > 0:
            row["completion_tokens_mean"] = length
            row["completion_tokens"] = round(
                length * self.completions_per_generation * max(1, self.generations))
            row["tokens_per_s"] = round(row["completion_tokens"] / self.seconds, 2)
        if logs.get("completions/max_length") is not None:
            # The rollouts' decode steps: a batch decodes until its longest completion ends.
            row["completion_tokens_max"] = logs["completions/max_length"]
        if logs.get("completions/clipped_ratio") is not None:
            # Rollouts that max_completion_length cut off: they rarely reach an answer.
            row["completion_cut_off"] = logs["completions/clipped_ratio"]
        self._new_window()
        self.latest = row
        if state.is_world_process_zero:
            self.run.log_metrics(row)

    def _write_samples(self, step: int) -> None:
        last = self.last
        for i in range(min(self.samples_per_log, len(last.completions))):
            sample: dict[str, Any] = {
                "step": step, "question": last.questions[i], "completion": last.completions[i],
                "rewards": {name: values[i] for name, values in last.rewards.items()
                            if i < len(values)},
            }
            if i < len(last.structure):
                score = last.structure[i]
                sample["student_steps"] = render_steps(last.student_steps[i])
                sample["teacher_steps"] = render_steps(last.teacher_steps[i])
                sample["step_rewards"] = score.step_rewards
                sample["first_divergence"] = score.first_divergence
            self.run.log_sample(sample)


class RichProgressCallback(TrainerCallback):
    """A progress bar with step, reward, structure reward, step time and ETA; where nobody
    watches a terminal (a log file, CI) one plain line per logged step instead."""

    def __init__(self, run_log: RunLogCallback, title: str):
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        from rlkd_lite.console import console

        self.run_log = run_log
        self.console = console
        self.progress = Progress(
            TextColumn(f"[bold]{title}[/]"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TextColumn("ETA"),
            TimeRemainingColumn(), console=console, transient=False,
            disable=not console.is_interactive)
        self.task = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.progress.start()
        self.task = self.progress.add_task("train", total=state.max_steps,
                                           completed=state.global_step, stats="")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if "train_runtime" in (logs or {}):  # the end-of-training summary, not a step
            return
        row = self.run_log.latest
        parts = []
        for key, label in (("reward", "reward"), ("structure", "struct"), ("accuracy", "acc"),
                           ("loss", "loss")):
            if key in row:
                parts.append(f"{label} {row[key]:.3g}")
        if row.get("step_time_s"):
            parts.append(f"{row['step_time_s']:.1f}s/step")
        stats = " · ".join(parts)
        self.progress.update(self.task, completed=state.global_step, stats=stats)
        if not self.console.is_interactive:
            self.console.print(f"step {state.global_step}/{state.max_steps} · {stats}",
                               highlight=False)

    def on_step_end(self, args, state, control, **kwargs):
        self.progress.update(self.task, completed=state.global_step)

    def on_train_end(self, args, state, control, **kwargs):
        self.progress.stop()


class GracefulInterrupt(TrainerCallback):
    """First Ctrl-C: finish the current step, save a checkpoint and stop. A second one aborts."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        from rlkd_lite.console import console

        console.print("[yellow]Ctrl-C: saving a checkpoint after this step "
                      "(press again to abort without saving)[/]")

    def on_step_end(self, args, state, control, **kwargs):
        if self.requested:
            # Log the steps since the last row too, so the metrics reach the saved step.
            control.should_log = control.should_save = True
            control.should_training_stop = True

    def on_train_end(self, args, state, control, **kwargs):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def run_callbacks(run: RunDir, last: LastBatch | None, config: Any, title: str
                  ) -> tuple[RunLogCallback, list[TrainerCallback]]:
    """The callbacks every run gets; the log callback comes first so the bar shows fresh rows.
    In a distributed run only the main process shows progress."""
    run_log = RunLogCallback(run, last, sample_every=config.sample_every,
                             samples_per_log=config.samples_per_log,
                             completions_per_generation=config.rollouts_per_generation())
    progress = [RichProgressCallback(run_log, title)] if is_main_process() else []
    return run_log, [run_log, *progress, GracefulInterrupt()]


def drop_printer(trainer: Any) -> None:
    """With tqdm disabled the Trainer prints raw log dicts; our progress bar replaces both."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
