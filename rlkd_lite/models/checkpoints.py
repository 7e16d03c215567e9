"""Where a run keeps its Trainer checkpoints, and which is the newest complete one.

In models/ rather than train/ because loading an adapter from a run directory needs it too, and
a lower stage must not import a higher one.
"""
from __future__ import annotations

import json
from pathlib import Path

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
