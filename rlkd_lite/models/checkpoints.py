"""Where a run keeps its Trainer checkpoints, and which is the newest complete one.

In models/ rather than train/ because loading an adapter from a run directory needs it too, and
a lower stage must not import a higher one.
"""
from __future__ import annotations

import json
from pathlib import Path

from rlkd_lite.models.adapters import ADAPTER_CONFIG, ADAPTER_WEIGHTS, PICKLED_ADAPTER_WEIGHTS

CHECKPOINTS = "checkpoints"
"""The folder in a run directory that the Trainer saves `checkpoint-N` folders into."""


def checkpoint_step(checkpoint: Path | None) -> int:
    """The optimizer step a `checkpoint-N` folder was saved at (0 for none)."""
    return int(checkpoint.name.split("-")[-1]) if checkpoint is not None else 0


def last_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of the run in `run_dir`: the Trainer writes
    trainer_state.json last, and not atomically, so a checkpoint counts once that file reads as
    JSON."""
    numbered = [p for p in (run_dir / CHECKPOINTS).glob("checkpoint-*")
                if p.name.split("-")[-1].isdigit()]
    for path in sorted(numbered, key=checkpoint_step, reverse=True):
        try:
            json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # not written, or torn by a crash: an older one it is
        return path
    return None


def sub_adapters(checkpoint: Path) -> list[Path]:
    """The folders of a checkpoint's other adapters: PEFT saves the student's at the root and
    each other one (the frozen gsrm, TRL's `ref` when beta != 0) in a sub-folder named after it,
    and the Trainer loads those again on resume, after the model. A sub-folder counts when it
    holds any adapter file, so that one left half-written is found too."""
    names = (ADAPTER_CONFIG, ADAPTER_WEIGHTS, PICKLED_ADAPTER_WEIGHTS)
    return [folder for folder in sorted(checkpoint.iterdir())
            if folder.is_dir() and any((folder / name).is_file() for name in names)]
