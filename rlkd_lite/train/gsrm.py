"""The GSRM adapter: labelled decompositions, then SFT of a LoRA adapter.

Labelling (`rlkd-lite gsrm label`) turns (question, reasoning) into training examples
    {"id", "question", "reasoning", "steps": [{"meta", "query", "answer"}, ...], "source"}
from one of three sources: the `rules` decomposer (GSM8K-style solutions), an OpenAI-compatible
endpoint given the few-shot decomposition prompt, or the user's own JSONL in that format
(`steps` may also be tagged text). Every example is checked; one that fails goes to the rejects
file with its reason, never into the output. Outputs are resumable (`rlkd_lite.data.resumable`).

Training (`rlkd-lite gsrm train`) fits a LoRA adapter on the student's own base model, loaded
exactly as `train` loads the student (same model, backend, quantisation, LoRA rank and target
modules, so that `train --gsrm-adapter` can load it beside the student), by SFT on the
zero-shot prompt the `gsrm` decomposer runs with (`decomposition_messages(..., few_shot=False)`)
and the tagged steps as the completion, loss on the completion only. A held-out share of the
examples is decomposed by the trained adapter at the end and scored against its labels.
"""
from __future__ import annotations

import random
import statistics
import time
import typing
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from rlkd_lite.data.jsonl import read_jsonl, write_json_atomic, write_jsonl_atomic
from rlkd_lite.data.problems import Problem, id_field, required_field, steps_field, text_field
from rlkd_lite.data.resumable import REQUEST_FAILED, ResumableOutput
from rlkd_lite.errors import InputError, RlkdError
from rlkd_lite.structure.decomposers import RulesDecomposer
from rlkd_lite.structure.judges import ExactJudge
from rlkd_lite.structure.reward import structure_scores
from rlkd_lite.structure.steps import Step, parse_steps, render_steps
from rlkd_lite.train.config import (RECIPES_DIR, Range, RunConfig, doc, load_config,
                                     read_recipe, recipe_path)
from rlkd_lite.train.run_dir import RunDir, is_main_process

# Reject reasons, as written to the rejects file.
NO_REASONING = "no_reasoning"
"""The problem's teacher trace is given only as steps: there is no text to decompose."""
NO_STEPS = "no_steps"
"""No steps: the rules decomposer found no computation in the reasoning."""
UNPARSEABLE = "unparseable"
"""The endpoint's reply holds no tagged steps."""
CUT_OFF = "cut_off"
"""max_tokens ended the endpoint's reply: its last steps may be missing or cut short, and an
adapter trained on it would learn to stop early."""
EMPTY_PART = "empty_part"
"""A step has an empty meta-reasoning, sub-problem or answer."""
INVALID = "invalid"
"""A line of the user's file is not a valid example (the detail names line and field)."""
DUPLICATE_ID = "duplicate_id"


@dataclass(frozen=True)
class LabelExample:
    """One GSRM training example: the reasoning of a question and its steps."""

    id: str
    question: str
    reasoning: str
    steps: list[Step]
    source: str
    """Where the label came from: "rules", "api:MODEL" or the user's file."""

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "question": self.question, "reasoning": self.reasoning,
                "steps": [asdict(step) for step in self.steps], "source": self.source}


def label_defect(steps: Sequence[Step]) -> tuple[str, str] | None:
    """Why `steps` cannot be a label, as (reason, detail); None when they can."""
    if not steps:
        return NO_STEPS, "no steps found"
    for number, step in enumerate(steps, 1):
        for part, text in (("meta-reasoning", step.meta), ("sub-problem", step.query),
                           ("answer", step.answer)):
            if not text.strip():
                return EMPTY_PART, f"step {number} has an empty {part}"
    return None


def _record(output: ResumableOutput, example: LabelExample) -> None:
    """Accept `example` into `output`, or reject it with the reason its steps fail."""
    defect = label_defect(example.steps)
    if defect is None:
        output.accept(example.to_json())
    else:
        output.reject(example.id, *defect)


def _with_reasoning(problems: Sequence[Problem], output: ResumableOutput) -> list[Problem]:
    """The problems not yet decided that have reasoning text; the others are rejected."""
    todo = []
    for problem in output.pending(problems, lambda p: p.id, lambda p: p.question):
        if problem.reasoning:
            todo.append(problem)
        else:
            output.reject(problem.id, NO_REASONING,
                          "the teacher trace is given only as steps; labels need reasoning text")
    return todo


def label_with_rules(problems: Sequence[Problem], output: ResumableOutput) -> dict[str, Any]:
    """Label each problem's reasoning with the rules decomposer. Returns `output.summary()`."""
    rules = RulesDecomposer()
    for problem in _with_reasoning(problems, output):
        _record(output, LabelExample(problem.id, problem.question, problem.reasoning,
                                     rules.decompose(problem.reasoning), "rules"))
    return output.summary()


def label_with_api(problems: Sequence[Problem], client: Any, output: ResumableOutput, *,
                   max_tokens: int = 1024) -> dict[str, Any]:
    """Ask an OpenAI-compatible endpoint (a `ChatClient`) for each problem's steps with the
    few-shot decomposition prompt, greedily. Returns `output.summary()`."""
    from rlkd_lite.console import item_progress
    from rlkd_lite.structure.llm import decomposition_messages

    todo = _with_reasoning(problems, output)
    conversations = [decomposition_messages(p.question, p.reasoning, few_shot=True) for p in todo]
    with item_progress("label") as progress:
        task = progress.add_task("", total=len(todo))
        for index, reply in client.complete_many(conversations, temperature=0.0,
                                                 max_tokens=max_tokens):
            problem = todo[index]
            if isinstance(reply, Exception):
                output.reject(problem.id, REQUEST_FAILED, str(reply))
            elif reply.cut_off:
                output.reject(problem.id, CUT_OFF, f"the reply was cut off at max_tokens="
                              f"{max_tokens} (raise --max-tokens and re-run with "
                              f"--retry-rejected)", reply=reply.text[:2000])
            else:
                # A reasoning model may think first; the steps are what follows its thinking.
                steps = parse_steps(reply.text.rsplit("</think>", 1)[-1])
                if steps:
                    _record(output, LabelExample(problem.id, problem.question, problem.reasoning,
                                                 steps, f"api:{client.model}"))
                else:
                    output.reject(problem.id, UNPARSEABLE, "the reply has no tagged steps",
                                  reply=reply.text[:2000])
            progress.update(task, advance=1, description=output.tally())
    return output.summary()


def label_from_file(path: str | Path, output: ResumableOutput) -> dict[str, Any]:
    """Validate the user's labelled examples; valid ones go to `output`, invalid ones (a bad
    line, a missing or mistyped field, a duplicate id, unusable steps) to its rejects file.
    Returns `output.summary()`."""
    name = str(path)
    first_line: dict[str, int] = {}
    for line, row in read_jsonl(path, on_error=lambda exc: output.reject(None, INVALID, str(exc))):
        where = {"path": name, "line": line}
        try:
            example_id = _example_id(row, where)
        except InputError as exc:
            output.reject(None, INVALID, str(exc))
            continue
        if example_id in first_line:
            output.reject(example_id, DUPLICATE_ID,
                          f"{name}:{line}: id first seen on line {first_line[example_id]}")
            continue
        first_line[example_id] = line
        if not output.pending([example_id], str):  # decided by an earlier run: counted
            continue
        try:
            example = _example(row, example_id, where, name)
        except InputError as exc:
            output.reject(example_id, INVALID, str(exc))
            continue
        _record(output, example)
    return output.summary()


def read_label_examples(path: str | Path) -> list[LabelExample]:
    """Every example of a label file, strictly: the first bad line raises InputError naming file,
    line and field, as do duplicate ids and unusable steps."""
    name = str(path)
    examples: list[LabelExample] = []
    first_line: dict[str, int] = {}
    for line, row in read_jsonl(path):
        where = {"path": name, "line": line}
        example_id = _example_id(row, where)
        if example_id in first_line:
            raise InputError(f"duplicate id {example_id!r} (first on line "
                             f"{first_line[example_id]})", field="id", **where)
        first_line[example_id] = line
        example = _example(row, example_id, where, name)
        defect = label_defect(example.steps)
        if defect is not None:
            raise InputError(defect[1], field="steps", **where)
        examples.append(example)
    return examples


def _example_id(row: dict[str, Any], where: dict[str, Any]) -> str:
    """The line's id; the line number when it has none (as in problem files)."""
    return id_field(row["id"], where) if row.get("id") is not None else str(where["line"])


def _example(row: dict[str, Any], example_id: str, where: dict[str, Any],
             default_source: str) -> LabelExample:
    question = text_field(required_field(row, "question", where), "question", where)
    reasoning = text_field(required_field(row, "reasoning", where), "reasoning", where)
    raw_steps = required_field(row, "steps", where)
    if isinstance(raw_steps, str):
        steps = parse_steps(raw_steps)
        if not steps:
            raise InputError("text without step tags: give [{meta, query, answer}, ...] or "
                             "tagged text", field="steps", **where)
    else:
        steps = steps_field(raw_steps, where)
    source = row.get("source")
    return LabelExample(example_id, question, reasoning, steps,
                        default_source if source is None else text_field(source, "source", where))


# ---------------------------------------------------------------------------------------------
# Training

@dataclass(kw_only=True)
class GsrmTrainConfig(RunConfig):
    """A GSRM recipe: a run recipe (it `extends` the student's, so model, backend, quantisation
    and LoRA shape are the student's) whose optimisation fields train the gsrm adapter, plus the
    fields below. `gsrm_max_new_tokens` and `gsrm_batch_size` drive the held-out evaluation, as
    they drive the decomposer during RLKD training; fields about problems, rewards and GRPO are
    not used."""

    # It loads no gsrm adapter: it makes one (a student recipe it extends may name it).
    LOADED_ADAPTERS: typing.ClassVar[tuple[str, ...]] = ("init_adapter",)
    PATH_FIELDS: typing.ClassVar[tuple[str, ...]] = (*RunConfig.PATH_FIELDS, "examples")
    RANGES: typing.ClassVar[dict[str, Range]] = {
        **RunConfig.RANGES, "held_out": (lambda v: 0 < v < 1, "between 0 and 1 (a share)")}

    examples: str | None = doc("Labelled decompositions, JSONL (from `rlkd-lite gsrm label`).",
                               default=None)
    held_out: float = doc("Share of the examples kept out of training and decomposed by the "
                          "trained adapter at the end (at least one example).")

    def input_files(self) -> dict[str, str]:
        """The labelled examples, required (the student's data and teacher are not read)."""
        if not self.examples:
            raise RlkdError("no labelled examples: pass --examples FILE (made by `rlkd-lite "
                            "gsrm label`)")
        return {"examples": self.examples}


_GSRM_FIELDS = {f.name for f in fields(GsrmTrainConfig)} - {f.name for f in fields(RunConfig)}


def load_gsrm_config(recipe: str, overrides: dict[str, Any] | None = None) -> GsrmTrainConfig:
    """Load a GSRM recipe (see `GsrmTrainConfig`) with overrides, checked."""
    path = recipe_path(recipe)
    # A student's recipe lacks the GSRM fields; say which recipe was meant, not which field.
    # `--examples` comes with every call, so only the other fields tell (`--set held_out=0.1`).
    given = set(read_recipe(path)[0]) | (set(overrides or {}) - {"examples"})
    if not _GSRM_FIELDS & given:
        raise RlkdError(f"{recipe} is a training recipe for the student, not a gsrm recipe; use "
                        f"e.g. {_gsrm_recipe_names(path)[0]} (recipes/gsrm-*.yaml)")
    return load_config(recipe, overrides, config_class=GsrmTrainConfig)


def _gsrm_recipe_names(student: Path) -> list[str]:
    """The gsrm recipes in recipes/, those that extend the `student` recipe first."""
    import yaml

    def extends_student(path: Path) -> bool:
        parent = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("extends")
        return parent in (student.stem, student.name)

    recipes = sorted(RECIPES_DIR.glob("gsrm-*.yaml"))
    return [p.stem for p in sorted(recipes, key=lambda p: not extends_student(p))]


def split_held_out(examples: Sequence[LabelExample], share: float, seed: int
                   ) -> tuple[list[LabelExample], list[LabelExample]]:
    """(train, held out): round(share × n) examples, at least one, drawn by `seed`; both keep
    the file's order."""
    if len(examples) < 2:
        raise RlkdError(f"need at least 2 labelled examples (one to train on, one to hold "
                        f"out), got {len(examples)}")
    count = min(len(examples) - 1, max(1, round(share * len(examples))))
    held = set(random.Random(f"rlkd-lite gsrm held-out {seed}").sample(range(len(examples)),
                                                                       count))
    return ([e for i, e in enumerate(examples) if i not in held],
            [e for i, e in enumerate(examples) if i in held])


def gsrm_sft_rows(examples: Sequence[LabelExample]) -> list[dict[str, Any]]:
    """Prompt/completion rows for TRL: the decomposer's zero-shot prompt, the tagged steps.

    The chat template gets the decomposer's options (e.g. no thinking block) so that training
    sees the prompt tokens the decomposer will generate from.
    """
    from rlkd_lite.structure.llm import _TEMPLATE_OPTIONS, decomposition_messages

    return [{"prompt": decomposition_messages(e.question, e.reasoning, few_shot=False),
             "completion": [{"role": "assistant", "content": render_steps(e.steps)}],
             "chat_template_kwargs": dict(_TEMPLATE_OPTIONS)}
            for e in examples]


def evaluate_decompositions(labels: Sequence[Sequence[Step]],
                            predicted: Sequence[Sequence[Step]]) -> dict[str, float | int]:
    """How well predicted steps reproduce labelled ones, over a set of examples:
    - parse_rate: share of predictions with at least one step;
    - step_count_agreement: share with exactly the label's number of steps;
    - mean_structure_reward: the structure reward (exact judge, the authors' unnormalised sum)
      of the prediction against the label, averaged; `..._normalized` divides each by the
      label's step count (1.0 = every step reproduced exactly).
    """
    if len(labels) != len(predicted) or not labels:
        raise ValueError(f"need as many predictions as labels, and some: got {len(predicted)} "
                         f"for {len(labels)}")
    judge = ExactJudge()
    rewards = [s.reward for s in structure_scores(labels, predicted, judge)]
    normalized = [s.reward for s in structure_scores(labels, predicted, judge, normalize=True)]
    return {
        "examples": len(labels),
        "parse_rate": sum(1 for steps in predicted if steps) / len(labels),
        "step_count_agreement": sum(len(p) == len(t) for t, p in zip(labels, predicted))
        / len(labels),
        "mean_structure_reward": statistics.fmean(rewards),
        "mean_structure_reward_normalized": statistics.fmean(normalized),
        "mean_label_steps": statistics.fmean(len(t) for t in labels),
        "mean_predicted_steps": statistics.fmean(len(p) for p in predicted),
    }


@dataclass
class GsrmTrainResult:
    run_dir: Path
    adapter: Path
    """The trained gsrm adapter: pass it (or `run_dir`) to `train --gsrm-adapter`."""
    steps: int
    seconds: float
    last_metrics: dict[str, Any]
    evaluation: dict[str, Any]
    """Held-out metrics (see `evaluate_decompositions`), as saved in RUN/eval.json."""
    dropped_too_long: int
    """Training examples left out for exceeding max_seq_length tokens."""
    model: Any
    """The trained model (adapter `default`, active), for callers that go on using it."""
    tokenizer: Any
    interrupted: bool = False
    """Stopped by Ctrl-C before max_steps, after saving a checkpoint; not evaluated then."""


def train_gsrm(config: GsrmTrainConfig, *, resume: bool = False) -> GsrmTrainResult:
    """Train the gsrm adapter as `config` says, evaluate it on the held-out examples and save
    both. The run directory holds config.yaml, metrics.jsonl, checkpoints/, adapter/ (the gsrm
    adapter), eval.json and eval_predictions.jsonl (each held-out example's output). A run
    stopped by Ctrl-C saves its adapter but is not evaluated (`interrupted`)."""
    from rlkd_lite.train.run import check_run_config, open_run

    check_run_config(config)  # also that the examples are given
    examples = read_label_examples(config.examples)
    train_examples, held_out = split_held_out(examples, config.held_out, config.seed)
    with open_run(config, resume=resume) as (run, checkpoint):
        return _train_gsrm(config, train_examples, held_out, run, checkpoint)


def _train_gsrm(config: GsrmTrainConfig, train_examples: list[LabelExample],
                held_out: list[LabelExample], run: RunDir, checkpoint: Path | None
                ) -> GsrmTrainResult:
    from rlkd_lite.console import console
    from rlkd_lite.train.run import (load_config_model, save_student_adapter, train_from,
                                     was_interrupted)
    from rlkd_lite.train.sft import build_completion_trainer, rows_that_fit

    # The student's loader, so that the adapter has the student's exact shape; its trainable
    # adapter (`default`) becomes the gsrm adapter. `init_adapter` continues a gsrm adapter.
    model, tokenizer = load_config_model(config)
    rows = gsrm_sft_rows(train_examples)
    kept = rows_that_fit(tokenizer, rows, config.max_seq_length)
    console.print(f"gsrm: {len(kept)} training examples ({len(rows) - len(kept)} longer than "
                  f"{config.max_seq_length} tokens left out), {len(held_out)} held out",
                  highlight=False)

    start = time.perf_counter()
    trainer, run_log = build_completion_trainer(config, model, tokenizer, kept, run, "gsrm")
    steps = train_from(trainer, checkpoint, config.max_steps, run)
    seconds = time.perf_counter() - start
    interrupted = was_interrupted(trainer) and steps < config.max_steps
    evaluation: dict[str, Any] = {}
    if is_main_process():  # the other ranks of a distributed run hold the same adapter
        save_student_adapter(model, run.adapter)  # the trained adapter is the model's `default`
        if not interrupted:  # Ctrl-C asks to stop, not to wait for the held-out decoding
            evaluation, predictions = evaluate_gsrm_adapter(model, tokenizer, held_out, config)
            write_json_atomic(run.path / "eval.json", evaluation)
            write_jsonl_atomic(run.path / "eval_predictions.jsonl", predictions)
    return GsrmTrainResult(run.path, run.adapter, steps, seconds, run_log.latest, evaluation,
                           len(rows) - len(kept), model, tokenizer, interrupted)


def evaluate_gsrm_adapter(model: Any, tokenizer: Any, examples: Sequence[LabelExample],
                          config: RunConfig, adapter: str = "default"
                          ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Decompose `examples` with `adapter` (zero-shot, greedy, the config's decomposer budget)
    and score against their labels: (metrics, one prediction row per example)."""
    from rlkd_lite.structure.decomposers import DecomposeInput
    from rlkd_lite.structure.llm import GSRMDecomposer

    if config.backend == "unsloth":
        from unsloth import FastLanguageModel

        FastLanguageModel.for_inference(model)  # Unsloth's generation path (no-op on CPU)
    decomposer = GSRMDecomposer(model, tokenizer, adapter=adapter, few_shot=False,
                                batch_size=config.gsrm_batch_size,
                                max_new_tokens=config.gsrm_max_new_tokens)
    outputs = decomposer.completions([DecomposeInput(e.question, e.reasoning) for e in examples])
    predicted = [parse_steps(text) for text in outputs]
    metrics = evaluate_decompositions([e.steps for e in examples], predicted)
    label_tokens = [len(ids) for ids in tokenizer([render_steps(e.steps) for e in examples],
                                                  add_special_tokens=False)["input_ids"]]
    metrics["labels_over_token_budget"] = sum(n > config.gsrm_max_new_tokens for n in label_tokens)
    metrics["outputs_cut_off"] = decomposer.last_counts["cut_off"]
    metrics["max_new_tokens"] = config.gsrm_max_new_tokens
    predictions = [{"id": e.id, "label": render_steps(e.steps), "output": text,
                    "label_steps": len(e.steps), "predicted_steps": len(steps)}
                   for e, text, steps in zip(examples, outputs, predicted)]
    return metrics, predictions
