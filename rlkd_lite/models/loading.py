"""Load the student (4-bit base + trainable LoRA `default`) and, on the same base, the frozen
`gsrm` adapter that decomposes and judges reasoning inside the reward function.

Two backends share one code path after loading:
- `unsloth`: `FastLanguageModel` (fused kernels, Unsloth gradient checkpointing; on a CPU machine
  Unsloth falls back to plain transformers + PEFT by itself).
- `hf`: transformers + PEFT + bitsandbytes, no Unsloth: for comparisons and for multi-GPU runs
  under `accelerate launch`.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlkd_lite.errors import RlkdError
from rlkd_lite.models.adapters import (ADAPTER_CONFIG, GSRM_ADAPTER, STUDENT_ADAPTER,
                                      check_saved_adapter)
from rlkd_lite.models.checkpoints import last_checkpoint
from rlkd_lite.models.registry import ResolvedModel, resolve_model

BACKENDS = ("unsloth", "hf")


@dataclass(frozen=True)
class LoraSettings:
    """The student's LoRA shape; the gsrm adapter must target the same modules (Unsloth)."""

    rank: int
    alpha: int
    dropout: float
    target_modules: tuple[str, ...]


_DEPENDENCY_NOISE = {
    # torchao's optional compiled kernels, built for other GPUs or another torch (it falls back)
    "torchao": "Failed to load ",
    # torchao registering enums with torch's pytree the deprecated way
    "torch.utils._pytree": "is an Enum subclass",
    # bitsandbytes on a CPU without the optional `kernels` package
    "bitsandbytes.backends.cpu.ops": "Failed to load CPU gemm_4bit_forward",
}
"""Warnings, by logger, that dependencies log while a model loads and that say nothing about
the run; only these messages are dropped, the loggers' other warnings still show."""


class _DropMessage(logging.Filter):
    """Drops a logger's records whose message contains `fragment`."""

    def __init__(self, fragment: str):
        super().__init__()
        self.fragment = fragment

    def filter(self, record: logging.LogRecord) -> bool:
        return self.fragment not in str(record.msg)


@functools.cache
def _quiet_dependency_noise() -> None:
    """Drop `_DEPENDENCY_NOISE` (once per process; before torchao or bitsandbytes is imported,
    which happens while a model loads)."""
    for name, fragment in _DEPENDENCY_NOISE.items():
        logging.getLogger(name).addFilter(_DropMessage(fragment))


def prepare_backend(backend: str) -> None:
    """Import order matters: Unsloth must patch transformers/TRL before they are imported."""
    if backend not in BACKENDS:
        raise RlkdError(f"unknown backend '{backend}', choose one of {', '.join(BACKENDS)}")
    _quiet_dependency_noise()
    if backend == "unsloth":
        import unsloth  # noqa: F401
    else:
        import torch

        if not torch.cuda.is_available():
            # TRL 1.15 always installs a Triton fused LM-head kernel; without a GPU driver only
            # Triton's interpreter can run it (slow, but correct). Unsloth avoids this itself.
            os.environ.setdefault("TRITON_INTERPRET", "1")


@contextlib.contextmanager
def _model_files(resolved: ResolvedModel) -> Iterator[None]:
    """Around loading a model and its tokenizer: a model whose files cannot be fetched or found
    (no network, not cached, no such repo, gated, a local folder missing a file) becomes an
    RlkdError saying why and what to do, the original kept as __cause__. Other errors pass."""
    try:
        yield
    except Exception as exc:
        chain = [exc]
        while chain[-1].__cause__ is not None:  # Unsloth and transformers re-raise Hub errors
            chain.append(chain[-1].__cause__)
        fetch_errors = [error for error in chain if _is_fetch_error(error)]
        if not fetch_errors:
            raise
        raise RlkdError(_unloadable_message(resolved, fetch_errors)) from exc


# How transformers words its own OSErrors for model files it cannot find or fetch.
_MISSING_FILES = ("does not appear to have a file named", "is not a local folder",
                  "couldn't connect to", "can't load", "no file named", "could not locate")


def _is_fetch_error(error: BaseException) -> bool:
    """The Hub client's errors (HTTP, not cached, offline) and transformers' missing-file
    OSErrors; not other OSErrors (a full disk, a missing CUDA library), which are no Hub
    matter and whose traceback is wanted."""
    import httpx  # the Hub client's HTTP library
    from huggingface_hub import errors as hub

    if isinstance(error, (httpx.HTTPError, hub.LocalEntryNotFoundError, hub.EntryNotFoundError,
                          hub.OfflineModeIsEnabled)):
        return True
    message = str(error).lower()
    return (type(error) is OSError and error.errno is None
            and any(phrase in message for phrase in _MISSING_FILES))


def _unloadable_message(resolved: ResolvedModel, errors: list[BaseException]) -> str:
    """Why a model's files could not be had (`errors`: the fetch errors in the chain, outermost
    first), and what to do about it."""
    import httpx
    from huggingface_hub import is_offline_mode
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    name = resolved.name_or_path
    if Path(name).is_dir():
        return f"could not load the model in {name}: {_first_line(errors[0])}"
    url = f"https://huggingface.co/{name}"
    network = next((error for error in errors if isinstance(error, httpx.TransportError)), None)
    download = f"download it beforehand (hf download {name}) so that it loads from the cache"
    if any(isinstance(error, GatedRepoError) for error in errors):
        why, fix = "access to it is gated", f"request access at {url}, then log in: hf auth login"
    elif any(isinstance(error, RepositoryNotFoundError) for error in errors):
        why = f"there is no such repository ({url})"
        fix = "check the name; if the repository is private, log in: hf auth login"
    elif is_offline_mode():
        why = "it is not in the local cache and HF_HUB_OFFLINE is set"
        fix = f"unset HF_HUB_OFFLINE where huggingface.co is reachable, {download}"
    else:
        why = (f"huggingface.co cannot be reached ({_first_line(network)})" if network
               else _first_line(errors[0]))
        fix = f"run where huggingface.co is reachable, {download}"
    alias = f" (alias {resolved.alias})" if resolved.alias else ""
    return (f"could not load model {name}{alias} from the Hugging Face Hub: {why}. To fix: "
            f"{fix}, or give a local model folder instead")


def _first_line(error: BaseException) -> str:
    return str(error).strip().partition("\n")[0] or type(error).__name__


def _fetch_config(resolved: ResolvedModel) -> None:
    """Before transformers loads a Hub model: with the Hub unreachable, each file costs ~25 s of
    retries (minutes if connections time out), and AutoTokenizer asks for config.json twice
    before it fails; asking once fails in half the time. A cached copy returns at once. (Not
    before Unsloth, which may load another repo than the one named: its own copy.)"""
    if not Path(resolved.name_or_path).is_dir():
        from huggingface_hub import hf_hub_download

        hf_hub_download(resolved.name_or_path, "config.json")


def _load_with_transformers(resolved: ResolvedModel, *, quantize: bool,
                            trust_remote_code: bool, device: int) -> tuple[Any, Any]:
    """(model, tokenizer) through plain transformers, 4-bit NF4 when `quantize`, on GPU
    `device` where there is one; a model whose files cannot be had is an RlkdError."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"dtype": _compute_dtype(torch),
                              "trust_remote_code": trust_remote_code}
    if quantize:
        kwargs["quantization_config"] = _bnb_4bit_config()
    if torch.cuda.is_available():
        kwargs["device_map"] = {"": device}
    with _model_files(resolved):
        _fetch_config(resolved)
        tokenizer = AutoTokenizer.from_pretrained(resolved.name_or_path,
                                                  trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(resolved.name_or_path, **kwargs)
    return model, tokenizer


def _bnb_4bit_config() -> Any:
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                              bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=_compute_dtype(torch))


def _compute_dtype(torch: Any) -> Any:
    if torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def _fix_cpu_4bit(model: Any) -> None:
    """bitsandbytes may repack 4-bit weights for AVX512-BF16 after a no-grad forward on CPU, and a
    later backward then fails; keep the portable kernel (Unsloth's CPU loader does the same)."""
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def _prepare_tokenizer(tokenizer: Any) -> None:
    """A pad token (the eos token where there is none). And for a BPE tokenizer (Qwen, SmolLM2)
    `clean_up_tokenization_spaces` False, as transformers already treats it: the clean-up
    would strip spaces before punctuation, so it ignores the flag but warns on the first decode."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and type(backend.model).__name__ == "BPE":
        tokenizer.clean_up_tokenization_spaces = False


def load_student(model_name: str, *, backend: str, lora: LoraSettings, max_seq_length: int,
                 load_in_4bit: bool = True, seed: int = 0, init_adapter: str | None = None,
                 gsrm_adapter: str | None = None, gradient_checkpointing: bool = True,
                 trust_remote_code: bool = False, decode_graphs: bool = False
                 ) -> tuple[Any, Any]:
    """Return (PeftModel with a trainable `default` adapter [and a frozen `gsrm`], tokenizer).

    `init_adapter` starts the student from a saved adapter (e.g. an SFT run: SFT→RLKD);
    `gsrm_adapter` loads a trained GSRM adapter; without one the reward uses the bare base model.
    `decode_graphs` lets Unsloth graph this model type's decode step (`allow_decode_graphs`).
    """
    prepare_backend(backend)
    import torch

    resolved = resolve_model(model_name, backend, load_in_4bit)
    quantize = load_in_4bit and not resolved.pre_quantized_4bit
    if backend == "unsloth":
        from unsloth import FastLanguageModel

        with _model_files(resolved):
            model, tokenizer = FastLanguageModel.from_pretrained(
                resolved.name_or_path, max_seq_length=max_seq_length,
                load_in_4bit=load_in_4bit or resolved.pre_quantized_4bit,
                trust_remote_code=trust_remote_code)
        model = FastLanguageModel.get_peft_model(
            model, r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
            target_modules=list(lora.target_modules), random_state=seed,
            use_gradient_checkpointing="unsloth" if gradient_checkpointing else False)
        if decode_graphs:
            from rlkd_lite.models.generation import allow_decode_graphs

            allow_decode_graphs(model.config.model_type)
    else:
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

        base, tokenizer = _load_with_transformers(
            resolved, quantize=quantize, trust_remote_code=trust_remote_code,
            device=int(os.environ.get("LOCAL_RANK", 0)))
        if quantize or resolved.pre_quantized_4bit:
            base = prepare_model_for_kbit_training(
                base, use_gradient_checkpointing=gradient_checkpointing)
        elif gradient_checkpointing:
            base.gradient_checkpointing_enable()
        torch.manual_seed(seed)
        model = get_peft_model(base, LoraConfig(
            r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
            target_modules=list(lora.target_modules), task_type="CAUSAL_LM"))
    if not torch.cuda.is_available():
        _fix_cpu_4bit(model)
    _prepare_tokenizer(tokenizer)
    if init_adapter:
        load_adapter_weights(model, init_adapter, STUDENT_ADAPTER)
    if gsrm_adapter:
        from rlkd_lite.models.adapters import add_frozen_adapter

        try:
            add_frozen_adapter(model, GSRM_ADAPTER, str(adapter_dir(gsrm_adapter)))
        except ValueError as exc:  # e.g. target modules differ from the student's
            raise RlkdError(f"{gsrm_adapter}: {exc}") from None
    return model, tokenizer


def adapter_dir(path: str | Path) -> Path:
    """Accept an adapter directory or a run directory (whose adapter sits in `adapter/`); a
    damaged adapter there is an RlkdError naming the file (`check_saved_adapter`)."""
    p = Path(path).expanduser()
    for candidate in (p, p / "adapter"):
        if (candidate / ADAPTER_CONFIG).is_file():
            check_saved_adapter(candidate)
            return candidate
    # A run killed before the end saved no adapter/, but its checkpoints each hold one.
    checkpoint = last_checkpoint(p)
    hint = (f"; the run saved no final adapter (stopped early?), but its newest checkpoint has "
            f"one: {checkpoint}" if checkpoint and (checkpoint / ADAPTER_CONFIG).is_file()
            else "")
    raise RlkdError(f"{p}: no LoRA adapter here (expected adapter_config.json in it or in "
                    f"{p / 'adapter'}){hint}")


def load_adapter_weights(model: Any, path: str | Path, adapter_name: str) -> None:
    """Copy a saved adapter's weights into an existing adapter with the same LoRA settings."""
    from peft.utils import load_peft_weights, set_peft_model_state_dict

    directory = adapter_dir(path)
    _check_lora_settings(directory, model.peft_config[adapter_name])
    weights = load_peft_weights(str(directory))
    result = set_peft_model_state_dict(model, weights, adapter_name=adapter_name)
    unexpected = [k for k in getattr(result, "unexpected_keys", []) if "lora_" in k]
    if unexpected:
        raise RlkdError(f"{path}: adapter does not fit the student's modules (e.g. "
                        f"{unexpected[0]}); was it trained on another base model?")


_COMPARED_LORA_SETTINGS = ("r", "lora_alpha", "use_rslora", "target_modules")
"""The settings a saved adapter must share with the adapter its weights go into. Only the
weights are copied, so a smaller set of target modules would silently leave the rest at their
initial values, and another alpha (or rsLoRA) would scale the update by the wrong factor."""


def _check_lora_settings(directory: Path, target: Any) -> None:
    """Raise RlkdError naming the adapter's config file and every setting in which it differs
    from `target` (the PEFT config of the adapter its weights are for)."""
    from peft import LoraConfig

    # PEFT's reader fills settings that an older file lacks with their defaults.
    saved = LoraConfig.from_pretrained(str(directory))
    differences = []
    for name in _COMPARED_LORA_SETTINGS:
        theirs, ours = (_setting_text(getattr(config, name, None)) for config in (saved, target))
        if theirs != ours:
            differences.append(f"{name} {theirs} (the student's: {ours})")
    if differences:
        raise RlkdError(f"{directory / ADAPTER_CONFIG}: the adapter's LoRA settings "
                        f"differ from the student's: {', '.join(differences)} (the student's "
                        f"come from the recipe: lora_rank, lora_alpha, lora_target_modules)")


def _setting_text(value: Any) -> str:
    """A setting as the error shows it; target modules in a set (a regex stays a string)."""
    return ", ".join(sorted(value)) if isinstance(value, (set, list)) else str(value)


def load_inference_model(name_or_path: str, adapter: str | None = None, *,
                         adapter_name: str = GSRM_ADAPTER, load_in_4bit: bool | None = None,
                         trust_remote_code: bool = False) -> tuple[Any, Any]:
    """A model for generation and judging only (no training): transformers, plus an optional
    LoRA adapter under `adapter_name`. 4-bit by default on a GPU, full precision on a CPU."""
    _quiet_dependency_noise()
    import torch

    resolved = resolve_model(name_or_path, backend="hf")
    adapter_path = adapter_dir(adapter) if adapter else None  # a wrong path fails before loading
    cuda = torch.cuda.is_available()
    quantize = (cuda if load_in_4bit is None else load_in_4bit) and not resolved.pre_quantized_4bit
    model, tokenizer = _load_with_transformers(resolved, quantize=quantize,
                                               trust_remote_code=trust_remote_code, device=0)
    _prepare_tokenizer(tokenizer)
    if adapter_path:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_path),
                                          adapter_name=adapter_name, is_trainable=False)
    if not cuda:
        _fix_cpu_4bit(model)
    model.eval()
    return model, tokenizer


def trainer_precision_args(backend: str) -> dict[str, Any]:
    """bf16 where the GPU has it (else fp16); on a CPU without Unsloth, tell TRL to use it
    (Unsloth patches TRL's configs for the CPU by itself)."""
    import torch

    if torch.cuda.is_available():
        bf16 = torch.cuda.is_bf16_supported()
        return {"bf16": bf16, "fp16": not bf16}
    return {"use_cpu": True, "bf16": False} if backend == "hf" else {}
