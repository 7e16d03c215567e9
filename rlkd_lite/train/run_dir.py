"""The run directory: everything a run writes, in one place, written atomically.

    RUN/config.yaml          resolved configuration (what `--dry-run` prints)
    RUN/metrics.jsonl        one line per logged step: rewards, loss, step time, tokens/s
    RUN/samples.jsonl        sample completions with their decomposition and structure score
    RUN/checkpoints/         Trainer checkpoints (adapter + optimizer + state), every save_steps
    RUN/cache/               teacher decompositions, keyed by content and decomposer
    RUN/adapter/             the final student adapter (safetensors)
    RUN/summary.json         steps (of max_steps; `interrupted` by Ctrl-C?), wall time, last
                             metrics, whether the gsrm adapter is unchanged
    RUN/.lock                held by the process running in RUN (its pid inside)
"""
from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlkd_lite.data.jsonl import (append_jsonl, check_writable_dir, read_jsonl, write_jsonl_atomic,
                                  write_text_atomic)
from rlkd_lite.errors import InputError, RlkdError
from rlkd_lite.models.checkpoints import CHECKPOINTS, last_checkpoint

log = logging.getLogger(__name__)

# Fields that may differ between a run and its resumption without changing what is trained.
RESUMABLE_CHANGES = {"max_steps", "save_steps", "logging_steps", "sample_every", "output_dir",
                     "save_total_limit", "samples_per_log"}

RowCheck = Callable[[dict[str, Any], Path, int], None]
"""Raises InputError for a row of a log (read from the file, at the line) that is unusable."""


def read_log_rows(path: Path, check: RowCheck | None,
                  on_error: Callable[[InputError], None]) -> list[dict[str, Any]]:
    """The rows of a run's JSONL log that `check` (if any) passes. Each line skipped (unreadable,
    as the torn last line of a crash, or refused by `check`) goes to `on_error`. A file with no
    lines raises InputError (`RunDir.read_log` reads a missing or empty log as no rows)."""
    rows = []
    for line, row in read_jsonl(path, on_error=on_error):
        if check is not None:
            try:
                check(row, path, line)
            except InputError as exc:
                on_error(exc)
                continue
        rows.append(row)
    return rows


def is_main_process() -> bool:
    """Rank 0 under `accelerate launch` / `torchrun` (their RANK, else LOCAL_RANK), or no
    distributed launch at all: the one process that writes the run directory's own files."""
    rank = os.environ.get("RANK") or os.environ.get("LOCAL_RANK") or "0"
    return rank.strip() in ("", "0")


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def samples(self) -> Path:
        return self.path / "samples.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def cache(self) -> Path:
        return self.path / "cache"

    @property
    def adapter(self) -> Path:
        return self.path / "adapter"

    def read_config(self) -> dict[str, Any]:
        """The settings in config.yaml. One that is not UTF-8, not YAML or not a mapping raises
        InputError naming the file (and the line of a YAML error)."""
        import yaml

        from rlkd_lite.train.config import yaml_problem

        try:
            config = yaml.safe_load(self.config.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise InputError(f"not UTF-8 text ({exc.reason})", path=str(self.config)) from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise InputError(yaml_problem(exc), path=str(self.config),
                             line=mark.line + 1 if mark else None) from None
        if not isinstance(config, dict):
            found = "empty" if config is None else f"a {type(config).__name__}"
            raise InputError(f"{found}, where the run's settings were expected",
                             path=str(self.config))
        return config

    def last_checkpoint(self) -> Path | None:
        """The newest complete checkpoint (one whose trainer_state.json reads), or None."""
        return last_checkpoint(self.path)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the directory for this run: a second run into it (another terminal, a
        notebook) is refused instead of interleaving its logs and checkpoints with this one's.
        An OS lock, so a crashed run leaves none behind. Under `accelerate launch` or `torchrun`
        the main process (rank 0) holds it for all ranks. Where the OS or the file system has no
        such locks (Windows, some network mounts) the run goes on unguarded. A path that cannot
        be a directory to write in (an existing file, a path under a file, no permission)
        raises InputError naming it."""
        check_writable_dir(self.path)
        try:
            import fcntl
        except ImportError:
            yield
            return
        if not is_main_process():
            yield
            return
        created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        lock = self.path / ".lock"
        with open(lock, "a+", encoding="utf-8") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "unknown"
                raise RlkdError(f"{self.path} is in use by another run (process {holder}); wait "
                                f"for it to finish or choose another --output-dir") from None
            except OSError as exc:  # no locks on this file system
                log.warning("%s: cannot lock the run directory (%s); a second run into it "
                            "would not be refused", self.path, exc.strerror or exc)
                yield
                return
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            try:
                yield
            finally:
                if created and [p.name for p in self.path.iterdir()] == [lock.name]:
                    lock.unlink()  # nothing was written (the run was refused): leave no trace
                    self.path.rmdir()
                fcntl.flock(handle, fcntl.LOCK_UN)

    def prepare(self, config: dict[str, Any], *, resume: bool,
                path_fields: tuple[str, ...] = ()) -> None:
        """Create the directory; refuse to mix two different runs in one directory.

        `path_fields` hold paths that the config stores absolute: a relative one in an older
        run's config.yaml is the same path when it resolves (from here) to the new value."""
        import yaml

        if self.config.is_file():
            previous = self.read_config()
            for name in path_fields:
                value = previous.get(name)
                if (isinstance(value, str) and isinstance(config.get(name), str)
                        and os.path.abspath(os.path.expanduser(value)) == config[name]):
                    previous[name] = config[name]
            if not resume and (self.last_checkpoint() or self.adapter.exists()):
                raise RlkdError(f"{self.path} already holds a run; pass --resume to continue it "
                                f"or choose another --output-dir")
            changed = sorted(k for k in set(previous) | set(config)
                             if previous.get(k) != config.get(k) and k not in RESUMABLE_CHANGES)
            if resume and changed:
                raise RlkdError(f"cannot resume {self.path}: the configuration changed in "
                                f"{', '.join(changed)}")
        elif resume:
            raise RlkdError(f"nothing to resume in {self.path} (no config.yaml)")
        self.path.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.config, yaml.safe_dump(config, sort_keys=False, allow_unicode=True))

    def log_metrics(self, row: dict[str, Any]) -> None:
        append_jsonl(self.metrics, row)

    def log_sample(self, row: dict[str, Any]) -> None:
        append_jsonl(self.samples, row)

    @staticmethod
    def read_log(path: Path, on_error: Callable[[InputError], None] | None = None,
                 check: RowCheck | None = None) -> list[dict[str, Any]]:
        """The rows of a JSONL log ([] when there is none yet). A line that cannot be read (the
        torn last line of a crash mid-append) or that `check` refuses is skipped, or passed to
        `on_error`."""
        if not path.is_file() or path.stat().st_size == 0:
            return []
        return read_log_rows(path, check, on_error or (lambda _: None))

    def metric_rows(self) -> list[dict[str, Any]]:
        return self.read_log(self.metrics)

    def sample_rows(self) -> list[dict[str, Any]]:
        return self.read_log(self.samples)

    def trend(self, keys: list[str]) -> dict[str, tuple[float, float]]:
        """(mean over the first quarter of the logged steps, mean over the last quarter) per key:
        whether the rewards moved, in one line each."""
        rows = self.metric_rows()
        window = max(1, len(rows) // 4)
        out = {}
        for key in keys:
            values = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
            if values:
                out[key] = (sum(values[:window]) / len(values[:window]),
                            sum(values[-window:]) / len(values[-window:]))
        return out

    def forget_after(self, step: int) -> None:
        """On resume, drop metric and sample lines logged after the checkpoint we restart from,
        so the logs describe one consistent run."""
        for path in (self.metrics, self.samples):
            if path.is_file():
                write_jsonl_atomic(path, [r for r in self.read_log(path)
                                          if r.get("step", 0) <= step])
