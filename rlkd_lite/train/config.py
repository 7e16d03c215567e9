"""The run configuration: one YAML recipe per experiment, overridden from the command line.

Every field is documented where it is declared. Numbers (learning rate, reward weights,
lengths) have no defaults here: they come from a recipe in `recipes/`, so that an experiment is
fully described by its YAML file. A recipe may start from another with `extends: NAME`.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlkd_lite.errors import InputError, RlkdError

METHODS = ("rlkd", "grpo", "sft")
REWARDS = ("accuracy", "format", "tag_count", "structure")
# The top-level recipes/ folder; rlkd_lite/recipes links to it so that wheels carry the files.
RECIPES_DIR = Path(__file__).resolve().parents[1] / "recipes"


def doc(text: str, **kw: Any) -> Any:
    """A dataclass field with its help text kept beside it (`dataclasses.fields(...).metadata`)."""
    return field(metadata={"help": text}, **kw)


# Fields that count something (steps, tokens, items per batch): at least 1.
_COUNTS = ("max_steps", "save_steps", "save_total_limit", "logging_steps", "sample_every",
           "samples_per_log", "max_seq_length", "lora_rank", "lora_alpha",
           "gsrm_max_new_tokens", "gsrm_batch_size", "judge_batch_size",
           "per_device_train_batch_size", "gradient_accumulation_steps", "max_prompt_length",
           "max_completion_length")


MAX_SEED = 2**32 - 1
"""The largest seed numpy (and so transformers' set_seed) takes."""


@dataclass(kw_only=True)
class RunConfig:
    """Everything one training run needs; each field's help says what it is."""

    LOADED_ADAPTERS: typing.ClassVar[tuple[str, ...]] = ("init_adapter", "gsrm_adapter")
    """The adapter path fields the run loads, checked before it starts (`check_run_config`)."""

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
    gsrm_adapter: str | None = doc("Trained gsrm adapter; without it the base model, few-shot, "
                                   "decomposes and judges.", default=None)
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
    gsrm_max_new_tokens: int = doc("Token budget of one GSRM decomposition.")
    gsrm_batch_size: int = doc(
        "Completions decomposed per generate call. A decode step costs about the same for a "
        "bigger batch, so at best all the rollouts of a generation (per_device_train_batch_size "
        "× steps_per_generation) in one call, memory permitting.")
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
        "gradient_accumulation_steps, one generation per optimizer step). More amortises the "
        "rollouts and the GSRM's decompositions, whose decoding costs about the same for a "
        "bigger batch; the later optimizer steps of a generation then train slightly off-policy "
        "(TRL corrects with importance ratios).", default=None)
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
    logging_steps: int = doc("Log metrics every N steps.", default=1)
    sample_every: int = doc("Write sample completions with their decomposition every N steps.")
    samples_per_log: int = doc("Completions written each time.", default=4)

    def validate(self) -> None:
        """Check choices and cross-field rules before anything heavy loads."""
        decomposers = ("gsrm", "rules", "tagged")
        choices = {"method": METHODS, "backend": ("unsloth", "hf"), "decomposer": decomposers,
                   "teacher_decomposer": (None, *decomposers), "judge": ("llm", "lexical", "exact"),
                   "answer_format": ("think", "plain")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise RlkdError(f"{name} must be one of {', '.join(allowed)}, "
                                f"not '{getattr(self, name)}'")
        unknown = set(self.reward_weights) - set(REWARDS)
        if unknown:
            raise RlkdError(f"reward_weights: unknown reward(s) {sorted(unknown)}; "
                            f"known: {', '.join(REWARDS)}")
        for name, weight in self.reward_weights.items():
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                raise RlkdError(f"reward_weights: {name} must be a number, not {weight!r}")
        counts = [n for n in _COUNTS if getattr(self, n) < 1]
        if self.subset is not None and self.subset < 1:
            counts.append("subset")
        if counts:
            raise RlkdError(f"{', '.join(counts)} must be at least 1")
        if not 0 <= self.seed <= MAX_SEED:  # numpy refuses others, after the model has loaded
            raise RlkdError(f"seed must be in [0, 2**32), not {self.seed}")
        if not 0 <= self.warmup_ratio < 1:
            raise RlkdError(f"warmup_ratio must be in [0, 1), not {self.warmup_ratio}")
        if self.method != "sft":
            if self.num_generations < 2:
                raise RlkdError("num_generations must be at least 2: GRPO compares the "
                                "completions of one prompt with each other")
            if self.temperature <= 0:
                raise RlkdError(f"temperature must be above 0 (GRPO samples), not "
                                f"{self.temperature}")
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
    """Raw values and the line each key sits on, following `extends` chains."""
    import yaml

    if path in seen:
        raise InputError("recipe extends itself in a cycle", path=str(path))
    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text)
        values = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(f"not valid YAML: {getattr(exc, 'problem', exc)}", path=str(path),
                         line=mark.line + 1 if mark else None) from None
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", path=str(path)) from None
    if values is None:
        values, node = {}, None
    if not isinstance(values, dict):
        raise InputError("a recipe must be a mapping of field: value", path=str(path))
    lines = {k.value: k.start_mark.line + 1 for k, _ in node.value} if node is not None else {}
    parent = values.pop("extends", None)
    if parent is None:
        return values, {k: (path, n) for k, n in lines.items()}
    sibling = path.parent / str(parent)
    base, base_lines = read_recipe(sibling if sibling.is_file() else recipe_path(str(parent)),
                                   seen + (path,))
    base.update(values)
    base_lines.update({k: (path, n) for k, n in lines.items() if k != "extends"})
    return base, base_lines


def _check_type(name: str, value: Any, where: tuple[Path, int] | None,
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
        origin is float and isinstance(value, int) and not isinstance(value, bool))
    if not ok:
        path, line = where if where else (None, None)
        raise InputError(f"expected {getattr(base, '__name__', base)}, got {value!r}",
                         path=str(path) if path else None, line=line, field=name)
    if origin is float:
        return float(value)
    if origin is list:
        return list(value)
    return value


def load_config(recipe: str, overrides: dict[str, Any] | None = None,
                config_class: type[RunConfig] = RunConfig) -> RunConfig:
    """Load a recipe, apply overrides (CLI flags, `--set key=value`), check and return it.

    `config_class` is RunConfig or a subclass that adds fields (the GSRM recipe's)."""
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    path = recipe_path(recipe)
    values, lines = read_recipe(path)
    for key, value in (overrides or {}).items():
        name, dot, entry = key.partition(".")
        if dot:  # `reward_weights.structure`: one entry of a mapping, the others kept
            current = values.get(name, {})
            if not isinstance(current, dict):
                where = lines.get(name, (path, None))
                raise InputError(f"expected a mapping to set {key} in, got {current!r}",
                                 path=str(where[0]), line=where[1], field=name)
            values[name] = {**current, entry: value}
        elif value is not None:  # None: not given (a CLI flag left out); CLEARED sets None
            values[key] = None if value is CLEARED else value
            lines.pop(key, None)
    unknown = [k for k in values if k not in fields]
    if unknown:
        where = lines.get(unknown[0])
        raise InputError(f"unknown field (known: {', '.join(fields)})",
                         path=str(where[0] if where else path), line=where[1] if where else None,
                         field=unknown[0])
    missing = [name for name, f in fields.items() if name not in values
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise InputError(f"recipe lacks required field(s): {', '.join(missing)}", path=str(path))
    checked = {k: _check_type(k, v, lines.get(k), config_class) for k, v in values.items()}
    config = config_class(**checked)
    config.validate()
    return config


CLEARED = type("Cleared", (), {"__repr__": lambda self: "None"})()
"""An override that sets a field to None (`--set teacher=null`, or `--set teacher=`), where a
None override means "not given" and keeps the recipe's value. Fields that cannot be None
refuse it by name."""


def parse_set_overrides(pairs: list[str], config_class: type[RunConfig] = RunConfig
                        ) -> dict[str, Any]:
    """`--set key=value` pairs; values are parsed as YAML (numbers, booleans, lists, mappings).
    `FIELD.KEY=VALUE` sets one entry of a mapping field (`reward_weights.structure=20`), where
    `FIELD={...}` replaces the whole mapping; `load_config` applies them in order."""
    import yaml

    fields = [f.name for f in dataclasses.fields(config_class)]
    hints = typing.get_type_hints(config_class)
    mappings = [name for name in fields if typing.get_origin(hints[name]) is dict]
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = (part.strip() for part in pair.partition("="))
        name, dot, entry = key.partition(".")
        if not sep or name not in fields or (dot and (name not in mappings or not entry)):
            raise RlkdError(f"--set {pair!r}: expected FIELD=VALUE with a known field, or "
                            f"FIELD.KEY=VALUE for one entry of a mapping field "
                            f"({', '.join(mappings)}); known fields: {', '.join(fields)}")
        out.pop(key, None)  # a repeated key counts where it was given last
        value = yaml.safe_load(raw)
        out[key] = CLEARED if value is None and not dot else value
    return out
