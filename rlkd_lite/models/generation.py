"""Generating with a model that is in the middle of training: Unsloth's modes and decode graphs.

Unsloth keeps two modes on a model. Training mode: gradient checkpointing on, KV cache off.
Inference mode (`for_inference`): the fused decode path, cache on, checkpointing off. Its
`generate` switches to inference mode by itself and switches back only if the model was in
train mode when called. The GSRM generates from inside the reward with the model in eval mode
(`use_adapter`), so Unsloth's generate left it in inference mode: gradient checkpointing stayed
off for the rest of the run. `keep_training_mode` puts the model back.

Unsloth replays its one-token decode step as CUDA graphs (the eager step is bound by hundreds of
kernel launches per token) inside its RL trainers' rollouts, on model types it lists as tested.
`decode_graphs` opens the same scope for other generate calls (the GSRM's decompositions) and
`allow_decode_graphs` adds a model type to that list. Without Unsloth every helper here is a
no-op, so the same code runs on the `hf` backend and on CPUs.
"""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any


def is_unsloth_model(model: Any) -> bool:
    """Unsloth's GPU loader gives its models `for_inference` / `for_training` methods."""
    return callable(getattr(model, "for_inference", None)) and callable(
        getattr(model, "for_training", None))


def _unsloth_decode_graphs() -> Any:
    """Unsloth's decode-graph module if its GPU models are loaded, else None. Never imported
    from here: on a CPU machine Unsloth runs without `unsloth.models`, and importing it there
    patches transformers' model classes for the GPU. Private, so looked up defensively."""
    module = sys.modules.get("unsloth.models._decode_graphs")
    needed = ("rl_generation", "release_for_training", "_SUPPORTED_MODEL_TYPES")
    return module if module is not None and all(hasattr(module, n) for n in needed) else None


def gradient_checkpointing_mode(model: Any) -> Any:
    """The model's gradient checkpointing mode (Unsloth's "unsloth", True) or False."""
    return next((mode for mode in (getattr(m, "gradient_checkpointing", False)
                                   for m in model.modules()) if mode), False)


@contextlib.contextmanager
def keep_training_mode(model: Any) -> Iterator[None]:
    """Whatever generate calls inside do, an Unsloth model that was in training mode is in
    training mode afterwards, with the same gradient checkpointing, and Unsloth's decode buffers
    and graphs are freed for the backward pass."""
    if not is_unsloth_model(model):
        yield
        return
    in_training = not getattr(model, "_flag_for_generation", False)
    checkpointing = gradient_checkpointing_mode(model)
    try:
        yield
    finally:
        if in_training and getattr(model, "_flag_for_generation", False):
            graphs = _unsloth_decode_graphs()
            if graphs is not None:
                graphs.release_for_training(model)
            model.for_training(use_gradient_checkpointing=checkpointing)


@contextlib.contextmanager
def decode_graphs(model: Any) -> Iterator[None]:
    """Generate calls inside replay Unsloth's CUDA-graph decode step, as its RL rollouts do
    (only on NVIDIA GPUs and model types Unsloth allows; elsewhere Unsloth decodes eagerly)."""
    graphs = _unsloth_decode_graphs() if is_unsloth_model(model) else None
    with graphs.rl_generation() if graphs is not None else contextlib.nullcontext():
        yield


def allow_decode_graphs(model_type: str) -> bool:
    """Let Unsloth graph the decode step of `model_type` (e.g. qwen2, which it runs through the
    same Llama decode code as llama but does not list as tested). False without Unsloth's GPU
    models (where no decode step is graphed anyway)."""
    graphs = _unsloth_decode_graphs()
    if graphs is None:
        return False
    graphs._SUPPORTED_MODEL_TYPES.add(model_type)
    return True
