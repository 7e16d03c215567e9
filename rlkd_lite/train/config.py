"""The run configuration: one YAML recipe per experiment, overridden from the command line.

Every field is documented where it is declared. Numbers (learning rate, reward weights,
lengths) have no defaults here: they come from a recipe in `recipes/`, so that an experiment is
fully described by its YAML file. A recipe may start from another with `extends: NAME`.
"""
from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlkd_lite.data.jsonl import is_integer, is_number
from rlkd_lite.data.problems import DATA_SPECS, data_file
from rlkd_lite.errors import InputError, RlkdError
from rlkd_lite.models.registry import MODEL_ALIASES

METHODS = ("rlkd", "grpo", "sft")
REWARDS = ("accuracy", "format", "tag_count", "structure")
# The top-level recipes/ folder; rlkd_lite/recipes links to it so that wheels carry the files.
RECIPES_DIR = Path(__file__).resolve().parents[1] / "recipes"


def doc(text: str, **kw: Any) -> Any:
    """A dataclass field with its help text kept beside it (`dataclasses.fields(...).metadata`)."""
    return field(metadata={"help": text}, **kw)


MAX_SEED = 2**32 - 1
"""The largest seed numpy (and so transformers' set_seed) takes."""

Range = tuple[Callable[[Any], bool], str]
"""A numeric field's test and how errors word it (`... must be TEXT, not VALUE`)."""
_AT_LEAST_1: Range = (lambda v: v >= 1, "at least 1")
_AT_LEAST_0: Range = (lambda v: v >= 0, "at least 0")
_ABOVE_0: Range = (lambda v: v > 0, "above 0")
_SHARE: Range = (lambda v: 0 <= v < 1, "in [0, 1)")
# Fields that count something (steps, tokens, items per batch): at least 1.
_COUNTS = ("max_steps", "save_steps", "save_total_limit", "logging_steps", "sample_every",
           "samples_per_log", "max_seq_length", "lora_rank", "lora_alpha",
           "gsrm_max_new_tokens", "gsrm_batch_size", "judge_batch_size",
           "per_device_train_batch_size", "gradient_accumulation_steps", "max_prompt_length",
           "max_completion_length", "subset")

Where = Callable[[str], dict[str, Any]]
"""Where a field's value came from, as InputError's `path` and `line`: a recipe file and line,
a `--set` pair or a CLI flag ({} when unknown). A mapping's entry is asked as `FIELD.KEY`."""


def _nowhere(name: str) -> dict[str, Any]:
    return {}


def _check_range(name: str, value: float, allowed: Range | None, where: Where) -> None:
    """A number must be finite (YAML reads .nan and .inf, --set nan too) and in its range."""
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{name} must be a finite number, not {value}", **where(name))
    if allowed and not allowed[0](value):
        raise InputError(f"{name} must be {allowed[1]}, not {value}", **where(name))


@dataclass(kw_only=True)
class RunConfig:
    """Everything one training run needs; each field's help says what it is."""

    LOADED_ADAPTERS: typing.ClassVar[tuple[str, ...]] = ("init_adapter", "gsrm_adapter")
    """The adapter path fields the run loads, checked before it starts (`check_run_config`)."""
    PATH_FIELDS: typing.ClassVar[tuple[str, ...]] = (
        "model", "data", "teacher", "init_adapter", "gsrm_adapter", "output_dir")
    """Fields that may name a file or folder: stored absolute (`load_config`)."""
    RANGES: typing.ClassVar[dict[str, Range]] = {
        **dict.fromkeys(_COUNTS, _AT_LEAST_1),
        "seed": (lambda v: 0 <= v <= MAX_SEED, "in [0, 2**32)"),  # numpy refuses others
        "learning_rate": _ABOVE_0,
        "lora_dropout": _SHARE,  # torch takes 1, which would cut the LoRA path off entirely
        "warmup_ratio": _SHARE,
        "weight_decay": _AT_LEAST_0,
        "max_grad_norm": (lambda v: v >= 0, "at least 0 (0: no clipping)"),
        "beta": (lambda v: v >= 0, "at least 0 (0: no reference model)"),
        "num_train_epochs": _ABOVE_0,
    }
    """The values each numeric field takes (None, where a field may be None, is not tested)."""

    # --- model -------------------------------------------------------------------------------
    model: str = doc("Alias (qwen2.5-0.5b/1.5b/3b/7b, smollm2-135m), local path or Hub repo id.")
    backend: str = doc("unsloth (fused kernels) or hf (transformers+PEFT+bitsandbytes).",
                       default="unsloth")
    load_in_4bit: bool = doc("Quantise the frozen base to 4-bit NF4 (QLoRA).", default=True)
    max_seq_length: int = doc("Longest prompt+completion the model is prepared for, in tokens.")
    lora_rank: int = doc("LoRA rank r of the student adapter (and of a fresh gsrm adapter).")
    lora_alpha: int = doc("LoRA scaling alpha.")
    lora_dropout: float = doc("Dropout on the LoRA path.")
    lora_target_modules: list[str] = doc("Modules that get LoRA; the gsrm adapter must match.")
    init_adapter: str | None = doc("Start the student from this adapter or run dir (SFT→RLKD).",
                                   default=None)
    gsrm_adapter: str | None = doc("Trained gsrm adapter; without it the bare base model "
                                   "decomposes (few-shot) and judges (zero-shot).",
                                   default=None)
    trust_remote_code: bool = doc("Allow model code from the Hub (only if you trust it).",
                                  default=False)
    decode_graphs: bool = doc(
        "unsloth on NVIDIA: replay the decode step as CUDA graphs for this model even if Unsloth "
        "does not list its type as tested (it lists llama and qwen3; qwen2 runs the same decode "
        "code). On an H200, qwen2 gave identical greedy tokens at 10 ms per decode step instead "
        "of 32-47 (scripts/gpu_check.sh). UNSLOTH_DECODE_CUDA_GRAPHS=0 turns graphs off.",
        default=False)

    # --- data --------------------------------------------------------------------------------
    data: str = doc("synthetic (offline), gsm8k-subset (Hub) or a JSONL file of problems.")
    teacher: str | None = doc("JSONL of teacher traces paired by id, if not in the data file.",
                              default=None)
    subset: int | None = doc("Use the first N problems (synthetic: generate N).", default=None)
    system_prompt: str = doc("System message: how the student must lay out its reasoning.")
    answer_format: str = doc("think (<think>reasoning</think> then '#### N', as in the paper) or "
                             "plain (reasoning lines then '#### N'); what the format rewards "
                             "check and the SFT target.")

    # --- method and rewards ------------------------------------------------------------------
    method: str = doc("rlkd (structure + outcome rewards), grpo (outcome only) or sft.")
    reward_weights: dict[str, float] = doc(
        "Weight per reward (accuracy, format, tag_count, structure); summed before GRPO's "
        "group normalisation. grpo drops structure.")
    decomposer: str = doc("How reasoning becomes steps: gsrm (the model), rules or tagged.")
    judge: str = doc("How steps are compared: llm (the model, yes/no logits), lexical or exact.")
    teacher_decomposer: str | None = doc(
        "Decomposer for the teacher traces if not `decomposer` (e.g. rules for GSM8K-style "
        "traces while the GSRM decomposes rollouts).", default=None)
    normalize_structure: bool = doc("Divide the structure reward by the teacher's step count "
                                    "(the paper sums).", default=False)
    gsrm_max_new_tokens: int = doc("Token budget of one GSRM decomposition (one it cuts off "
                                   "is counted in structure/gsrm_cut_off, with a warning).")
    gsrm_batch_size: int = doc(
        "Completions decomposed per generate call. A bigger batch costs less per token (on an "
        "H200, 36 ms a decode step for 64 rows against 16.5 ms for 8), so at best all the "
        "rollouts of a generation (per_device_train_batch_size × steps_per_generation) in one "
        "call, memory permitting.")
    judge_batch_size: int = doc("Step pairs judged per forward pass.")

    # --- optimisation ------------------------------------------------------------------------
    learning_rate: float = doc("Peak learning rate of the student adapter.")
    lr_scheduler_type: str = doc("transformers scheduler name.", default="constant")
    warmup_ratio: float = doc("Share of steps spent warming up the learning rate.")
    weight_decay: float = doc("AdamW weight decay.")
    max_grad_norm: float = doc("Gradient clipping norm.")
    max_steps: int = doc("Optimizer steps in the run.")
    per_device_train_batch_size: int = doc("Completions per device per micro-batch.")
    gradient_accumulation_steps: int = doc("Micro-batches per optimizer step.")
    steps_per_generation: int | None = doc(
        "Micro-batches generated (and rewarded) at once (TRL's steps_per_generation; default: "
        "gradient_accumulation_steps, one generation per optimizer step). More decodes the "
        "rollouts and the GSRM's decompositions in bigger batches, which cost less per token: "
        "on an H200 the RLKD step took 3.1 s with 4 and 2.8 s with 8, against 4.7 s with 1 "
        "(README; not measured in the same call). "
        "The later optimizer steps of a generation train off-policy (TRL corrects with "
        "importance ratios).", default=None)
    num_generations: int = doc("GRPO group size: completions sampled per prompt.")
    max_prompt_length: int = doc("Prompts longer than this (tokens) are dropped at load time.")
    max_completion_length: int = doc("Longest completion sampled, in tokens.")
    temperature: float = doc("Sampling temperature of the rollouts.")
    beta: float = doc("KL coefficient against the reference (0 disables the reference pass).")
    loss_type: str = doc("TRL GRPO loss (grpo, dapo, dr_grpo, bnpo, ...).")
    num_train_epochs: float = doc("SFT only: passes over the teacher traces (max_steps wins).",
                                  default=1.0)
    seed: int = doc("Seed for data order, LoRA init and sampling.", default=0)

    # --- run directory -----------------------------------------------------------------------
    output_dir: str = doc("Run directory: adapter, config, metrics, samples, checkpoints.")
    save_steps: int = doc("Checkpoint every N steps (and on Ctrl-C).")
    save_total_limit: int = doc("Checkpoints kept on disk.", default=2)
    logging_steps: int = doc("Log metrics every N steps; a row holds the means over those "
                             "steps (tokens/s: their tokens over their time).", default=1)
    sample_every: int = doc("Write sample completions with their decomposition every N steps.")
    samples_per_log: int = doc("Completions written each time.", default=4)

    def validate(self, where: Where = _nowhere) -> None:
        """Check choices, ranges and cross-field rules before anything heavy loads; errors about
        one field say `where` its value came from."""
        decomposers = ("gsrm", "rules", "tagged")
        choices = {"method": METHODS, "backend": ("unsloth", "hf"), "decomposer": decomposers,
                   "teacher_decomposer": (None, *decomposers), "judge": ("llm", "lexical", "exact"),
                   "answer_format": ("think", "plain")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                spelled = ("null" if choice is None else choice for choice in allowed)
                raise InputError(f"{name} must be one of {', '.join(spelled)}, "
                                 f"not '{getattr(self, name)}'", **where(name))
        unknown = sorted(set(self.reward_weights) - set(REWARDS))
        if unknown:
            raise InputError(f"reward_weights: unknown reward(s) {unknown}; known: "
                             f"{', '.join(REWARDS)}", **where(f"reward_weights.{unknown[0]}"))
        for name, weight in self.reward_weights.items():
            if not is_number(weight):
                raise InputError(f"reward_weights: {name} must be a number, not {weight!r}",
                                 **where(f"reward_weights.{name}"))
            _check_range(f"reward_weights.{name}", weight, _AT_LEAST_0, where)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if is_number(value):
                _check_range(f.name, value, self.RANGES.get(f.name), where)
        if self.method != "sft":
            if self.num_generations < 2:
                raise InputError("num_generations must be at least 2: GRPO compares the "
                                 "completions of one prompt with each other",
                                 **where("num_generations"))
            if self.temperature <= 0:
                raise InputError(f"temperature must be above 0 (GRPO samples), not "
                                 f"{self.temperature}", **where("temperature"))
            structure = self.reward_weights.get("structure", 0)
            if self.method == "rlkd" and not structure > 0:
                raise RlkdError(f"method rlkd trains on the structure reward: reward_weights "
                                f"needs a positive structure weight, not {structure} (e.g. "
                                f"--set reward_weights.structure=N); for outcome rewards only "
                                f"use method grpo")
            if not self.active_rewards():
                raise RlkdError(f"no reward to train on: reward_weights gives method "
                                f"{self.method} no non-zero weight (grpo ignores structure)")
            batch = self.rollouts_per_generation()
            if self._micro_batches_per_generation() < 1 or batch % self.num_generations:
                raise RlkdError(f"per_device_train_batch_size × steps_per_generation (default "
                                f"gradient_accumulation_steps): {batch} must be a positive "
                                f"multiple of num_generations ({self.num_generations})")

    def input_files(self) -> dict[str, str]:
        """The files the run reads, by field (`check_run_config` checks that they exist)."""
        files = {"data": self.data} if data_file(self.data) is not None else {}
        return {**files, "teacher": self.teacher} if self.teacher else files

    def active_rewards(self) -> dict[str, float]:
        """The rewards this method trains on, with their weights (zero weights dropped)."""
        return {name: w for name, w in self.reward_weights.items()
                if w and not (self.method == "grpo" and name == "structure")}

    def steps_per_rollout(self) -> int:
        """Optimizer steps between two generations (1 unless steps_per_generation is more than
        gradient_accumulation_steps)."""
        return max(1, self._micro_batches_per_generation() // self.gradient_accumulation_steps)

    def rollouts_per_generation(self) -> int:
        """Completions generated (and rewarded) at once, on one device."""
        return self.per_device_train_batch_size * self._micro_batches_per_generation()

    def _micro_batches_per_generation(self) -> int:
        return (self.gradient_accumulation_steps if self.steps_per_generation is None
                else self.steps_per_generation)

    def uses_model_gsrm(self) -> bool:
        """Whether the reward needs the model itself (gsrm decomposer or llm judge)."""
        return self.method == "rlkd" and (self.decomposer == "gsrm" or self.judge == "llm")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELDS = {f.name: f for f in dataclasses.fields(RunConfig)}


def recipe_path(name_or_path: str) -> Path:
    """A recipe by name (a file in recipes/, with or without .yaml) or by path."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    for candidate in (RECIPES_DIR / name_or_path, RECIPES_DIR / f"{name_or_path}.yaml"):
        if candidate.is_file():
            return candidate
    known = ", ".join(sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))) or "none found"
    raise RlkdError(f"no recipe '{name_or_path}' (not a file; known recipes: {known})")


def read_recipe(path: Path, seen: tuple[Path, ...] = ()
                ) -> tuple[dict[str, Any], dict[str, tuple[Path, int]]]:
    """Raw values and the file and line each key sits on (a mapping's entries as `FIELD.KEY`),
    following `extends` chains."""
    import yaml

    if path in seen:
        raise InputError("recipe extends itself in a cycle", path=str(path))
    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text)
        values = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(yaml_problem(exc), path=str(path),
                         line=mark.line + 1 if mark else None) from None
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", path=str(path)) from None
    if values is None:
        values, node = {}, None
    if not isinstance(values, dict):
        raise InputError("a recipe must be a mapping of field: value", path=str(path))
    lines = {k: (path, n) for k, n in _key_lines(node, path).items()} if node is not None else {}
    parent = values.pop("extends", None)
    if parent is None:
        return values, lines
    sibling = path.parent / str(parent)
    try:
        parent_path = sibling if sibling.is_file() else recipe_path(str(parent))
    except RlkdError as exc:
        raise InputError(str(exc), path=str(path), line=lines["extends"][1],
                         field="extends") from None
    base, base_lines = read_recipe(parent_path, seen + (path,))
    base.update(values)
    for name in values:  # a value given here replaces the parent's, a mapping as a whole
        _forget(base_lines, name)
    base_lines.update({k: where for k, where in lines.items() if k != "extends"})
    return base, base_lines


def yaml_problem(exc: Exception) -> str:
    """What is wrong with a YAML text, in the words every YAML error here uses."""
    return f"not valid YAML: {getattr(exc, 'problem', None) or exc}"


def _key_lines(node: Any, path: Path, prefix: str = "") -> dict[str, int]:
    """The line of each key of a YAML mapping node, with the entries of mappings in it as
    `KEY.ENTRY`. A key given twice is refused: YAML would silently keep the last value."""
    import yaml

    lines: dict[str, int] = {}
    for key, value in node.value:
        name, line = f"{prefix}{key.value}", key.start_mark.line + 1
        if name in lines:
            raise InputError(f"given twice, on lines {lines[name]} and {line}", path=str(path),
                             line=line, field=name)
        lines[name] = line
        if isinstance(value, yaml.MappingNode):
            lines.update(_key_lines(value, path, f"{name}."))
    return lines


def _forget(sources: dict[str, Any], name: str) -> None:
    """Drop where field `name`, and each entry of it, came from: a new value replaces them."""
    for key in [k for k in sources if k == name or k.startswith(f"{name}.")]:
        del sources[key]


def _check_type(name: str, value: Any, where: dict[str, Any],
                config_class: type = RunConfig) -> Any:
    """Coerce ints to floats where floats are declared; reject anything else mistyped."""
    annotation = typing.get_type_hints(config_class)[name]
    args = typing.get_args(annotation)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), annotation) if args and (
        isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union
    ) else annotation
    origin = typing.get_origin(base) or base
    if value is None and optional:
        return None
    if origin is float and isinstance(value, str):
        try:  # YAML 1.1 reads `1e-4` (no dot) as a string; users write it that way anyway
            value = float(value)
        except ValueError:
            pass
    ok = (isinstance(value, origin) and not (origin is int and isinstance(value, bool))) or (
        origin is float and is_integer(value))
    if not ok:
        raise InputError(f"expected {getattr(base, '__name__', base)}, got {value!r}",
                         field=name, **where)
    if origin is float:
        return float(value)
    if origin is list:
        return list(value)
    return value


_NAMES = {"model": MODEL_ALIASES, "data": DATA_SPECS}
"""Path fields that also take names, which win over a file or folder of the same name."""


def _absolute(name: str, value: Any) -> Any:
    """A path field's value as an absolute path when it names a file or folder (the run
    directory: always), so that a run's config.yaml works from any directory; names (model
    aliases, Hub ids, built-in data) and paths to nothing stay as given."""
    if not isinstance(value, str) or value in _NAMES.get(name, ()):
        return value
    path = Path(value).expanduser()
    return os.path.abspath(path) if name == "output_dir" or path.exists() else value


def load_config(recipe: str, overrides: dict[str, Any] | None = None,
                config_class: type[RunConfig] = RunConfig) -> RunConfig:
    """Load a recipe, apply overrides (CLI flags, `--set key=value`), check and return it.

    `config_class` is RunConfig or a subclass that adds fields (the GSRM recipe's). Errors name
    where the value came from: recipe file and line, or the `--set` pair or flag where
    `overrides` are `SetOverrides`."""
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    path = recipe_path(recipe)
    values, lines = read_recipe(path)
    sources: dict[str, tuple[str, int | None]] = {k: (str(p), n) for k, (p, n) in lines.items()}

    def where(name: str) -> dict[str, Any]:
        source = sources.get(name) or sources.get(name.partition(".")[0])
        return {"path": source[0], "line": source[1]} if source else {}

    for key, value in (overrides or {}).items():
        name, dot, entry = key.partition(".")
        if not dot and value is None:
            continue  # not given (a CLI flag left out); CLEARED sets None
        if dot:  # `reward_weights.structure`: one entry of a mapping, the others kept
            current = values.get(name, {})
            if not isinstance(current, dict):
                raise InputError(f"expected a mapping to set {key} in, got {current!r}",
                                 field=name, **(where(name) or {"path": str(path)}))
            values[name] = {**current, entry: value}
        else:
            values[key] = None if value is CLEARED else value
            _forget(sources, key)
        if isinstance(overrides, SetOverrides):
            sources[key] = (overrides.source(key), None)
    unknown = [k for k in values if k not in fields]
    if unknown:
        raise InputError(f"unknown field (known: {', '.join(fields)})",
                         **(where(unknown[0]) or {"path": str(path)}), field=unknown[0])
    missing = [name for name, f in fields.items() if name not in values
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise InputError(f"recipe lacks required field(s): {', '.join(missing)}", path=str(path))
    checked = {k: _check_type(k, v, where(k), config_class) for k, v in values.items()}
    for name in set(config_class.PATH_FIELDS) & set(checked):
        checked[name] = _absolute(name, checked[name])
    config = config_class(**checked)
    config.validate(where)
    return config


CLEARED = type("Cleared", (), {"__repr__": lambda self: "None"})()
"""An override that sets a field to None (`--set teacher=null`, or `--set teacher=`), where a
None override means "not given" and keeps the recipe's value. Fields that cannot be None
refuse it by name."""


def _set_source(pair: str) -> str:
    return f"--set {pair!r}"


class SetOverrides(dict[str, Any]):
    """Overrides parsed from `--set` pairs, each remembering its pair for errors to name. A key
    set afterwards is a command's own flag of that name (`--max-steps`, merged in by `update`):
    errors name the flag then."""

    def __init__(self) -> None:
        super().__init__()
        self.pairs: dict[str, str] = {}

    def __setitem__(self, key: str, value: Any) -> None:
        self.pairs.pop(key, None)
        super().__setitem__(key, value)

    def update(self, *args: Any, **kwargs: Any) -> None:  # dict's own skips __setitem__
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def source(self, key: str) -> str:
        return _set_source(self.pairs[key]) if key in self.pairs else f"--{key.replace('_', '-')}"


def parse_set_overrides(pairs: list[str], config_class: type[RunConfig] = RunConfig
                        ) -> SetOverrides:
    """`--set key=value` pairs; values are parsed as YAML (numbers, booleans, lists, mappings).
    `FIELD.KEY=VALUE` sets one entry of a mapping field (`reward_weights.structure=20`), where
    `FIELD={...}` replaces the whole mapping; `load_config` applies them in order."""
    import yaml

    fields = [f.name for f in dataclasses.fields(config_class)]
    hints = typing.get_type_hints(config_class)
    mappings = [name for name in fields if typing.get_origin(hints[name]) is dict]
    out = SetOverrides()
    for pair in pairs:
        key, sep, raw = (part.strip() for part in pair.partition("="))
        name, dot, entry = key.partition(".")
        if not sep or name not in fields or (dot and (name not in mappings or not entry)):
            raise RlkdError(f"{_set_source(pair)}: expected FIELD=VALUE with a known field, or "
                            f"FIELD.KEY=VALUE for one entry of a mapping field "
                            f"({', '.join(mappings)}); known fields: {', '.join(fields)}")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise InputError(yaml_problem(exc), path=_set_source(pair)) from None
        out.pop(key, None)  # a repeated key counts where it was given last
        out[key] = CLEARED if value is None and not dot else value
        out.pairs[key] = pair
    return out
