"""Two LoRA adapters on one base model: a trainable student (`default`) and a frozen `gsrm`.

The gsrm adapter decomposes and judges inside the reward function, in the middle of training
the student, so switching to it must leave no trace: PEFT's `set_adapter` marks the adapter it
activates trainable and freezes all others (with `inference_mode=True` it freezes every
adapter), and `disable_adapter()` re-enables grads of the active adapter on exit whatever they
were before. `use_adapter` therefore snapshots and restores the active adapter, every
parameter's `requires_grad`, every module's train/eval mode and Unsloth's training mode
(`keep_training_mode`: Unsloth's generate leaves an eval-mode model in inference mode).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from rlkd_lite.errors import RlkdError

STUDENT_ADAPTER = "default"
"""The trainable adapter. TRL copies `default` into a `ref` adapter when beta != 0: keep it."""
GSRM_ADAPTER = "gsrm"
"""The frozen adapter that decomposes and judges reasoning inside the reward."""

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
"""The files PEFT saves an adapter in (`save_pretrained` with safetensors, its default)."""
PICKLED_ADAPTER_WEIGHTS = "adapter_model.bin"
"""Where PEFT's older torch format keeps them; not loaded here: weights load from safetensors
only (PEFT would fall back to this file with `torch.load`)."""

if TYPE_CHECKING:
    from peft import LoraConfig, PeftModel


def check_saved_adapter(directory: str | os.PathLike[str]) -> None:
    """Raise RlkdError naming the file when a saved adapter's config is no JSON object or its
    weights do not read: missing (a copy cut short, a folder made by hand), only in PEFT's
    torch format (`PICKLED_ADAPTER_WEIGHTS`), or a header that does not read (a file cut short
    by a full disk or a killed copy). PEFT would fail later, after the model has loaded, without
    naming the file (or fall back to the torch file). Cheap: the weights themselves are not
    read."""
    import json

    from safetensors import SafetensorError, safe_open

    config = Path(directory) / ADAPTER_CONFIG
    try:
        if not isinstance(json.loads(config.read_text(encoding="utf-8")), dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise RlkdError(f"{config}: not a readable adapter config ({exc})") from None
    weights = Path(directory) / ADAPTER_WEIGHTS
    if not weights.is_file():
        pickled = Path(directory) / PICKLED_ADAPTER_WEIGHTS
        if pickled.is_file():
            raise RlkdError(f"{pickled}: adapter weights in torch's pickle format; rlkd-lite "
                            f"loads weights from safetensors only ({ADAPTER_WEIGHTS}): load the "
                            f"adapter with PEFT and save_pretrained it again (safetensors is its "
                            f"default)")
        raise RlkdError(f"{weights}: no such file; the adapter's weights belong there, beside "
                        f"its {ADAPTER_CONFIG} (a copy cut short?)")
    try:
        with safe_open(str(weights), framework="numpy"):  # the header, checked against the size
            pass
    except SafetensorError as exc:
        raise RlkdError(f"{weights}: not readable adapter weights ({exc}); damaged or cut "
                        f"short?") from None


@contextlib.contextmanager
def use_adapter(model: PeftModel, name: str | None) -> Iterator[PeftModel]:
    """Run `model` with adapter `name` (None: the bare base model) for inference.

    For the duration: eval mode, no grad, that adapter alone active and frozen. Afterwards the
    previously active adapter, all `requires_grad` flags and all train/eval modes are exactly
    as before, even if the body raised. Not meant to be nested inside `disable_adapter()`.
    A model without PEFT adapters (loaded for inference only) is accepted with `name` None.
    """
    import torch
    from peft import PeftModel

    from rlkd_lite.models.generation import keep_training_mode

    has_adapters = isinstance(model, PeftModel)
    if name is not None and not has_adapters:
        raise ValueError(f"model has no PEFT adapters, so no adapter {name!r}")
    requires_grad = {param: param.requires_grad for param in model.parameters()}
    training = {module: module.training for module in model.modules()}
    previous = model.active_adapter if has_adapters else None
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(keep_training_mode(model))
            model.eval()
            stack.enter_context(torch.no_grad())
            if name is not None:
                model.set_adapter(name, inference_mode=True)
            elif has_adapters:
                stack.enter_context(model.disable_adapter())
            yield model
    finally:
        if has_adapters and model.active_adapter != previous:
            model.set_adapter(previous)
        for param, flag in requires_grad.items():
            param.requires_grad_(flag)
        for module, flag in training.items():
            module.training = flag


def add_frozen_adapter(
    model: PeftModel,
    name: str,
    source: str | os.PathLike[str] | LoraConfig,
    *,
    like: str = STUDENT_ADAPTER,
) -> None:
    """Add a frozen LoRA adapter `name` to `model`, leaving the active adapter as it was.

    `source` is a folder with a saved adapter (adapter_config.json + safetensors; for an adapter
    saved by `save_pretrained` under a non-default name that is the `<dir>/<name>` subfolder) or
    a LoraConfig for a fresh one (target_modules None: those of adapter `like`). The adapter must
    target the same modules as adapter `like`: with fewer, Unsloth's fast generation path raised
    `KeyError` for it (see shared GPU notes), so a mismatch is refused here, not on the GPU.
    No other parameter's `requires_grad` changes.
    """
    from peft import LoraConfig

    if like not in model.peft_config:
        raise ValueError(f"model has no adapter {like!r} to take target modules from")
    if isinstance(source, LoraConfig):
        config = source
        if config.target_modules is None:
            config = dataclasses.replace(
                config, target_modules=model.peft_config[like].target_modules)
    else:
        check_saved_adapter(source)
        config = LoraConfig.from_pretrained(os.fspath(source))
    _check_same_targets(model, name, config, like)

    requires_grad = {param: param.requires_grad for param in model.parameters()}
    if isinstance(source, LoraConfig):
        model.add_adapter(name, dataclasses.replace(config, inference_mode=True))
    else:
        model.load_adapter(os.fspath(source), adapter_name=name, is_trainable=False)
    for param in model.parameters():
        param.requires_grad_(requires_grad.get(param, False))  # new parameters: frozen


def _check_same_targets(model: PeftModel, name: str, config: LoraConfig, like: str) -> None:
    wanted, got = _target_modules(model.peft_config[like]), _target_modules(config)
    if wanted != got:
        raise ValueError(
            f"adapter {name!r} targets {got!r} but adapter {like!r} targets {wanted!r}; both must "
            "target the same modules (Unsloth's fast generation fails otherwise)"
        )


def _target_modules(config: LoraConfig) -> str | list[str]:
    """Target modules comparably: a regex stays a string, names become a sorted list."""
    targets = config.target_modules
    return targets if isinstance(targets, str) else sorted(targets or ())


def adapter_state_fingerprint(model: PeftModel, name: str) -> str:
    """sha256 (hex) over adapter `name`'s tensors: names, dtypes, shapes and bytes.

    Equal fingerprints before and after training prove the adapter's weights did not change.
    """
    import torch
    from peft import get_peft_model_state_dict

    if name not in model.peft_config:
        raise ValueError(f"model has no adapter {name!r}")
    # save_embedding_layers=False: "auto" may ask the Hub whether the vocabulary was resized.
    state = get_peft_model_state_dict(model, adapter_name=name, save_embedding_layers=False)
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().to("cpu").contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
