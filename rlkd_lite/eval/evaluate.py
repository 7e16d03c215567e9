"""Evaluate a model, with or without a trained adapter, on held-out problems: `rlkd-lite eval`.

What is measured, on the test split of the data (or a JSONL file):
- accuracy: the greedy completion's final answer equals the gold answer by value (the same check
  as the accuracy reward, `rlkd_lite.data.answers`);
- pass@k: from n sampled completions per problem, the unbiased estimator (`passk.py`);
- structure: the structure reward of the greedy completion's reasoning against the teacher's
  trace (`rlkd_lite.structure.reward`), by default with the model-free `auto` decomposer
  (tagged text is parsed, anything else segmented by rules) and the `lexical` judge; the mean
  is over the problems with a teacher trace only, and `structure_problems` says how many there
  were;
- completion_tokens: the mean length of the greedy completions, in tokens;
- cut_off: the share of greedy completions that the token limit ended (`max_new_tokens`, by
  default the recipe's max_completion_length): they rarely reach an answer, so a high share
  means the accuracy measures the limit as much as the model.

Prompts are built exactly as in training (the recipe's system prompt, then the question), and
when `adapter` is a run directory its own config.yaml gives the system prompt, the base model,
the data and the generation length, so a trained student is evaluated the way it was trained.
Evaluating a run on problems it trained on is refused (`check_no_overlap`).

The result is written atomically to eval.json; `read_eval` reads it back, `results_table` puts
several side by side. This module imports no model library at module level, so comparing and
reporting stay fast.
"""
from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from rich.markup import escape
from rich.table import Table

from rlkd_lite.console import console, item_progress, status
from rlkd_lite.data.answers import answers_match, extract_final_answer
from rlkd_lite.data.jsonl import check_not_input, check_writable, write_json_atomic
from rlkd_lite.data.problems import Problem, load_problems, problems_to_rows, question_key
from rlkd_lite.errors import InputError, RlkdError
from rlkd_lite.eval.alignment import ScoredPair
from rlkd_lite.eval.passk import mean_pass_at_k
from rlkd_lite.models.checkpoints import CHECKPOINTS
from rlkd_lite.structure.decomposers import DECOMPOSER_NAMES, DecomposeInput, make_decomposer
from rlkd_lite.structure.judges import JUDGE_NAMES, make_judge
from rlkd_lite.structure.reward import StructureScore, structure_scores
from rlkd_lite.structure.steps import Step, steps_to_dicts, think_text
from rlkd_lite.train.config import RunConfig, load_config

EVAL_FILE = "eval.json"
DEFAULT_KS = (1, 4, 8)
"""pass@k values reported by default (those up to the number of samples)."""
MODEL_DECOMPOSERS, MODEL_JUDGES = ("gsrm",), ("llm",)
"""Decomposers and judges that run on the evaluated model's base (with the gsrm adapter)."""


@dataclass(frozen=True)
class EvalSettings:
    """What to evaluate and how. None means: from the run (when `adapter` is a run directory),
    else from `recipe`."""

    recipe: str
    """Recipe giving the defaults (system prompt, model, data, lengths) when there is no run."""
    model: str | None = None
    adapter: str | None = None
    """A trained student: a run directory (its config.yaml then gives the defaults) or an
    adapter directory."""
    data: str | None = None
    """synthetic, gsm8k, gsm8k-subset (their test split) or a JSONL file of problems."""
    teacher: str | None = None
    """JSONL of teacher traces paired by id, when the data file has none."""
    limit: int | None = None
    seed: int = 0
    """Chooses the synthetic test problems and seeds sampling."""
    samples: int = 0
    """Sampled completions per problem for pass@k; 0 samples none."""
    ks: tuple[int, ...] | None = None
    """pass@k values; None: those of DEFAULT_KS up to `samples`."""
    temperature: float | None = None
    max_new_tokens: int | None = None
    batch_size: int = 16
    """Sequences generated per call (prompts per call x completions per prompt)."""
    decomposer: str = "auto"
    judge: str = "lexical"
    normalize: bool = False
    gsrm_adapter: str | None = None
    """Trained gsrm adapter for the gsrm decomposer or llm judge (default: the bare base)."""


@dataclass
class EvalResult:
    """Everything eval.json holds: what was evaluated, the metrics, and one item per problem."""

    model: str
    adapter: str | None
    run: str | None
    data: str
    split: str
    settings: dict[str, Any]
    metrics: dict[str, float | int]
    items: list[dict[str, Any]] = field(default_factory=list)
    path: Path | None = field(default=None, compare=False)
    """Where the result was written or read from (not part of eval.json)."""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["path"]
        return data


# ---------------------------------------------------------------------------------------------
# Runs: defaults and the training-set overlap check

def find_run_dir(adapter: str | Path) -> Path | None:
    """The run directory an adapter belongs to: the path itself (`RUN`), its parent (`RUN/adapter`)
    or grandparent (`RUN/checkpoints/checkpoint-N`) when that holds the run's config.yaml."""
    path = Path(adapter).expanduser()
    candidates = [path]
    if path.name == "adapter":
        candidates.append(path.parent)
    if path.parent.name == CHECKPOINTS:
        candidates.append(path.parent.parent)
    return next((c for c in candidates if (c / "config.yaml").is_file()), None)


def is_final_adapter(adapter: str | Path | None, run_dir: Path) -> bool:
    """Whether `adapter` names the run's final adapter (`RUN` or `RUN/adapter`), not one of
    its checkpoints."""
    return adapter is not None and Path(adapter).expanduser() in (run_dir, run_dir / "adapter")


def warn_if_interrupted(run_dir: Path, adapter: str | Path | None) -> None:
    """Say so when the run's final adapter is evaluated but Ctrl-C stopped the run short."""
    if not is_final_adapter(adapter, run_dir):
        return
    try:
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # no summary (a run that never finished), or an unreadable one: nothing to say
    if isinstance(summary, dict) and summary.get("interrupted"):
        console.print(f"[yellow]warning:[/] run {escape(str(run_dir))} was stopped by Ctrl-C at "
                      f"step {summary.get('steps')} of {summary.get('max_steps')}: its adapter is "
                      f"the student at that step (continue the run with --resume)",
                      highlight=False)


def run_config(run_dir: Path) -> RunConfig:
    """A run's configuration, as its config.yaml recorded it."""
    return load_config(str(run_dir / "config.yaml"))


def check_no_overlap(problems: Sequence[Problem], run_dir: Path) -> None:
    """Refuse (RlkdError) when any problem was trained on by the run or by the runs it started
    from (`init_adapter`, e.g. SFT before RLKD).

    A problem counts as trained on when its question equals a training question (case and
    spacing aside). Ids are no evidence: JSONL rows without one are numbered by line, and
    `teach` gives every row one source, so two different files share all their (source, id).
    """
    from rlkd_lite.train.run import load_run_problems

    seen: list[Path] = []
    pending: Path | None = run_dir
    while pending is not None and pending.resolve() not in seen:
        seen.append(pending.resolve())
        config = run_config(pending)
        training = load_run_problems(config)
        questions = {question_key(p.question) for p in training}
        overlap = [p for p in problems if question_key(p.question) in questions]
        if overlap:
            named = ", ".join(repr(p.id) for p in overlap[:5])
            more = f" and {len(overlap) - 5} more" if len(overlap) > 5 else ""
            raise RlkdError(
                f"refusing to evaluate: {len(overlap)} of {len(problems)} eval problems are in "
                f"the training set of run {pending} (data {config.data!r}, subset "
                f"{config.subset}, seed {config.seed}): {named}{more}. Evaluate on held-out "
                f"problems: --data synthetic or gsm8k (their test split never overlaps "
                f"training), or a JSONL file of other problems.")
        pending = find_run_dir(config.init_adapter) if config.init_adapter else None


# ---------------------------------------------------------------------------------------------
# Generation

class Completion(NamedTuple):
    """One generated completion."""

    text: str
    tokens: int
    """Its length in tokens, the end-of-turn token included when reached."""
    cut_off: bool
    """The token limit ended it before an end-of-turn token."""


def generate_completions(model: Any, tokenizer: Any, conversations: Sequence[list[dict]], *,
                         max_new_tokens: int, batch_size: int, samples_per_prompt: int = 1,
                         temperature: float | None = None, description: str = "generating"
                         ) -> list[list[Completion]]:
    """For each conversation, `samples_per_prompt` completions.

    Greedy when `temperature` is None, else sampled at that temperature with no top-p/top-k
    truncation (as in training). Sampling options the model's generation config may carry
    (Qwen-Instruct sets temperature, top-p, top-k and a repetition penalty) are overridden, so
    every model is decoded alike.
    """
    import torch

    from rlkd_lite.structure.llm import left_padded_batches, stop_token_ids

    texts = [tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
             for messages in conversations]
    # The chat template already wrote any special tokens the model needs.
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    sampling = ({"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0}
                if temperature is not None else
                {"do_sample": False, "temperature": None, "top_p": None, "top_k": None})
    stop_ids = stop_token_ids(model, tokenizer)
    results: list[list[Completion]] = [[] for _ in conversations]
    prompts_per_batch = max(1, batch_size // samples_per_prompt)
    with item_progress(description) as progress, torch.inference_mode():
        task = progress.add_task("", total=len(ids))
        for indices, input_ids, attention_mask in left_padded_batches(
                tokenizer, ids, prompts_per_batch, model.device):
            output = model.generate(
                input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=max_new_tokens,
                num_return_sequences=samples_per_prompt, repetition_penalty=1.0, num_beams=1,
                pad_token_id=tokenizer.pad_token_id, **sampling)
            generated = output[:, input_ids.shape[1]:].tolist()
            for row, tokens in enumerate(generated):
                stop = next((i for i, token in enumerate(tokens) if token in stop_ids), None)
                length = len(tokens) if stop is None else stop + 1
                text = tokenizer.decode(tokens[:length], skip_special_tokens=True)
                results[indices[row // samples_per_prompt]].append(
                    Completion(text, length, stop is None and length == max_new_tokens))
            progress.advance(task, len(indices))
    return results


# ---------------------------------------------------------------------------------------------
# Evaluation

def _resolve(settings: EvalSettings) -> tuple[RunConfig, Path | None]:
    """The configuration the defaults come from, and the run directory of the adapter if any.
    A path that holds no adapter fails here, before the data and the model load."""
    from rlkd_lite.models.loading import adapter_dir

    for path in (settings.adapter, settings.gsrm_adapter):
        if path:
            adapter_dir(path)
    run_dir = find_run_dir(settings.adapter) if settings.adapter else None
    if run_dir is None:
        return load_config(settings.recipe), None
    config = run_config(run_dir)
    if settings.data is None and config.data.lower().endswith(".jsonl"):
        raise RlkdError(f"--data is required: run {run_dir} trained on {config.data}, a JSONL "
                        f"file, which has no held-out split")
    return config, run_dir


def _check_choices(settings: EvalSettings, ks: tuple[int, ...], temperature: float) -> None:
    if settings.samples < 0 or settings.batch_size < 1:
        raise RlkdError("--samples must be at least 0 and --batch-size at least 1")
    # generate() refuses to sample at 0, but only after the model has loaded.
    if settings.samples and temperature <= 0:
        origin = " (the run's or recipe's)" if settings.temperature is None else ""
        raise RlkdError(f"sampling for pass@k (--samples {settings.samples}) needs --temperature "
                        f"above 0, not {temperature}{origin}")
    too_big = [k for k in ks if k > settings.samples or k < 1]
    if too_big:
        raise RlkdError(f"pass@k needs 1 <= k <= --samples ({settings.samples}); got k = "
                        f"{', '.join(map(str, too_big))}")
    if settings.decomposer not in DECOMPOSER_NAMES:
        raise RlkdError(f"unknown decomposer {settings.decomposer!r}; choose one of "
                        f"{', '.join(DECOMPOSER_NAMES)}")
    if settings.judge not in JUDGE_NAMES:
        raise RlkdError(f"unknown judge {settings.judge!r}; choose one of {', '.join(JUDGE_NAMES)}")


def _load_model(model_name: str, settings: EvalSettings, config: RunConfig) -> tuple[Any, Any]:
    """The model with the student adapter (`default`) and, if asked, the gsrm adapter (both
    frozen)."""
    from rlkd_lite.models.adapters import GSRM_ADAPTER, STUDENT_ADAPTER
    from rlkd_lite.models.loading import adapter_dir, load_inference_model

    # A 4-bit base was trained 4-bit and is evaluated so (on a GPU; a CPU loads full precision).
    options = {"load_in_4bit": None if config.load_in_4bit else False,
               "trust_remote_code": config.trust_remote_code}
    first, name = ((settings.adapter, STUDENT_ADAPTER) if settings.adapter
                   else (settings.gsrm_adapter, GSRM_ADAPTER))
    model, tokenizer = load_inference_model(model_name, first, adapter_name=name, **options)
    if settings.adapter and settings.gsrm_adapter:
        model.load_adapter(str(adapter_dir(settings.gsrm_adapter)), adapter_name=GSRM_ADAPTER,
                           is_trainable=False)
    return model, tokenizer


def _structure_parts(settings: EvalSettings, config: RunConfig, model: Any, tokenizer: Any
                     ) -> tuple[Any, Any]:
    """The decomposer and judge; model-backed ones with the recipe's budgets, as in training."""
    from rlkd_lite.models.adapters import GSRM_ADAPTER

    on_model = {"model": model, "tokenizer": tokenizer,
                "adapter": GSRM_ADAPTER if settings.gsrm_adapter else None}
    decomposer = make_decomposer(settings.decomposer, **(
        {**on_model, "max_new_tokens": config.gsrm_max_new_tokens,
         "batch_size": config.gsrm_batch_size}
        if settings.decomposer in MODEL_DECOMPOSERS else {}))
    judge = make_judge(settings.judge, **(
        {**on_model, "batch_size": config.judge_batch_size}
        if settings.judge in MODEL_JUDGES else {}))
    return decomposer, judge


def evaluate(settings: EvalSettings, output: str | Path | None = None) -> EvalResult:
    """Evaluate, write eval.json (to `output`, default `default_eval_path`) atomically, and
    return the result."""
    config, run_dir = _resolve(settings)
    path = Path(output) if output else default_eval_path(settings.adapter, run_dir)
    # Refused now, not after the whole evaluation.
    check_writable(path, example=EVAL_FILE)
    check_not_input(path, {"--data": settings.data, "--teacher": settings.teacher})
    ks = settings.ks if settings.ks is not None else tuple(
        k for k in DEFAULT_KS if k <= settings.samples)
    temperature = config.temperature if settings.temperature is None else settings.temperature
    _check_choices(settings, ks, temperature)
    model_name = settings.model or config.model
    data = settings.data or config.data
    # Problems need no teacher trace: accuracy and pass@k stand alone; structure is scored on
    # the problems that have one.
    problems = load_problems(data, subset=settings.limit, seed=settings.seed, split="test",
                             teacher=settings.teacher, require_trace=False)
    if run_dir is not None:
        check_no_overlap(problems, run_dir)
        warn_if_interrupted(run_dir, settings.adapter)
    elif settings.adapter:
        console.print(f"[yellow]warning:[/] {escape(settings.adapter)} is not in a run directory "
                      f"(no config.yaml next to it), so its training problems are unknown and "
                      f"cannot be checked against the eval problems", highlight=False)
    max_new_tokens = settings.max_new_tokens or config.max_completion_length

    from rlkd_lite.models.adapters import STUDENT_ADAPTER, use_adapter

    loading = f"loading {model_name}" + (f" with {settings.adapter}" if settings.adapter else "")
    with status(loading):
        model, tokenizer = _load_model(model_name, settings, config)
    decomposer, judge = _structure_parts(settings, config, model, tokenizer)
    conversations = [row["prompt"] for row in problems_to_rows(problems, config.system_prompt)]
    generation = {"max_new_tokens": max_new_tokens, "batch_size": settings.batch_size}
    with use_adapter(model, STUDENT_ADAPTER if settings.adapter else None):
        greedy = [outputs[0] for outputs in generate_completions(
            model, tokenizer, conversations, description="greedy", **generation)]
        sampled = None
        if settings.samples:
            import torch

            torch.manual_seed(settings.seed)
            sampled = generate_completions(
                model, tokenizer, conversations, samples_per_prompt=settings.samples,
                temperature=temperature, description=f"sampling {settings.samples}/problem",
                **generation)

    completions = [completion.text for completion in greedy]
    with status(f"scoring structure ({settings.decomposer} decomposer, {settings.judge} judge)"):
        teacher, student, scores = _structure(problems, completions, decomposer, judge,
                                              settings.normalize)
    items = []
    for index, problem in enumerate(problems):
        text, length, cut_off = greedy[index]
        predicted = extract_final_answer(text)
        score = scores[index]
        item = {"id": problem.id, "question": problem.question, "answer": problem.answer,
                "completion": text, "predicted": predicted,
                "correct": answers_match(predicted, problem.answer), "completion_tokens": length,
                "cut_off": cut_off,
                "structure": score.reward, "step_rewards": score.step_rewards,
                "first_divergence": score.first_divergence,
                "teacher_steps": steps_to_dicts(teacher[index]),
                "student_steps": steps_to_dicts(student[index])}
        if sampled is not None:
            item["samples_correct"] = sum(answers_match(extract_final_answer(t), problem.answer)
                                          for t, _, _ in sampled[index])
        items.append(item)
    metrics: dict[str, float | int] = {
        "problems": len(items),
        "accuracy": statistics.fmean(item["correct"] for item in items)}
    for k in ks:
        metrics[f"pass@{k}"] = mean_pass_at_k([item["samples_correct"] for item in items],
                                              settings.samples, k)
    traced = [score.reward for problem, score in zip(problems, scores)
              if problem.reasoning or problem.steps]
    if traced:  # no teacher traces in the data: no structure metric
        metrics["structure"] = statistics.fmean(traced)
        metrics["structure_problems"] = len(traced)
        if len(traced) < len(problems):
            console.print(f"note: the structure reward is the mean over the {len(traced)} of "
                          f"{len(problems)} problems that have a teacher trace", highlight=False)
    metrics["completion_tokens"] = statistics.fmean(item["completion_tokens"] for item in items)
    metrics["cut_off"] = statistics.fmean(item["cut_off"] for item in items)
    result = EvalResult(
        model=model_name, adapter=settings.adapter, run=str(run_dir) if run_dir else None,
        data=data, split="test",
        settings={"seed": settings.seed, "limit": settings.limit, "teacher": settings.teacher,
                  "samples": settings.samples, "k": list(ks), "temperature": temperature,
                  "max_new_tokens": max_new_tokens, "decomposer": settings.decomposer,
                  "judge": settings.judge, "normalize": settings.normalize,
                  "gsrm_adapter": settings.gsrm_adapter, "system_prompt": config.system_prompt},
        metrics=metrics, items=items, path=path)
    result.path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(result.path, result.to_json())
    return result


def default_eval_path(adapter: str | None, run_dir: Path | None) -> Path:
    """Where eval.json goes without --output: RUN/eval.json for a run's final adapter, beside
    the adapter for one of its checkpoints (RUN/eval.json, which `report` shows, stays the final
    adapter's), else ./eval.json."""
    if run_dir is None or adapter is None:
        return Path(EVAL_FILE)
    if is_final_adapter(adapter, run_dir):
        return run_dir / EVAL_FILE
    return Path(adapter).expanduser() / EVAL_FILE


def _structure(problems: Sequence[Problem], completions: Sequence[str], decomposer: Any,
               judge: Any, normalize: bool
               ) -> tuple[list[list[Step]], list[list[Step]], list[StructureScore]]:
    """Teacher steps, student steps and structure scores. Teacher text goes through the same
    decomposer as the student's reasoning, so both sides are segmented alike (as in training);
    given teacher steps are used where there is no text. A problem without a teacher trace
    scores 0 (outside the structure metric) and its completion is not decomposed."""
    with_text = [i for i, p in enumerate(problems) if p.reasoning]
    traced = [i for i, p in enumerate(problems) if p.reasoning or p.steps]
    inputs = [DecomposeInput(problems[i].question, problems[i].reasoning or "") for i in with_text]
    inputs += [DecomposeInput(problems[i].question, think_text(completions[i])) for i in traced]
    decomposed = decomposer(inputs) if inputs else []
    teacher = [list(p.steps or []) for p in problems]
    for i, steps in zip(with_text, decomposed):
        teacher[i] = steps
    student: list[list[Step]] = [[] for _ in problems]
    for i, steps in zip(traced, decomposed[len(with_text):]):
        student[i] = steps
    return teacher, student, structure_scores(teacher, student, judge, normalize)


# ---------------------------------------------------------------------------------------------
# Reading and showing results

def read_eval(path: str | Path) -> EvalResult:
    """An eval.json file, or the eval.json in a (run) directory."""
    file = Path(path).expanduser()
    if file.is_dir():
        file = file / EVAL_FILE
    if not file.is_file():
        raise InputError("not found: give an eval.json file or a directory holding one (written "
                         "by `rlkd-lite eval`)", path=str(file))
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
        return EvalResult(**raw, path=file)
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError) as exc:
        raise InputError(f"not an eval.json written by `rlkd-lite eval` ({exc})",
                         path=str(file)) from None


def eval_label(path: str | Path) -> str:
    """A short name for an evaluation: its directory's name ("runs/rlkd/eval.json" -> "rlkd")."""
    p = Path(path).expanduser()
    return (p.parent if p.name == EVAL_FILE else p).resolve().name or str(p)


def metric_names(results: Sequence[EvalResult]) -> list[str]:
    """Every metric any of the results has, in a fixed order: accuracy, pass@k by k, structure,
    completion tokens, cut off, problems."""
    ks = sorted({int(name[5:]) for r in results for name in r.metrics if name.startswith("pass@")})
    names = ["accuracy", *(f"pass@{k}" for k in ks), "structure", "completion_tokens", "cut_off",
             "problems"]
    return [n for n in names if any(n in r.metrics for r in results)]


def format_metric(name: str, value: float | int | None) -> str:
    """Accuracies and the cut-off share as percentages, the structure reward to 3 decimals,
    lengths to 1."""
    if value is None:
        return "-"
    if name in ("accuracy", "cut_off") or name.startswith("pass@"):
        return f"{value:.1%}"
    if name == "structure":
        return f"{value:.3f}"
    if name == "completion_tokens":
        return f"{value:.1f}"
    return str(value)


METRIC_TITLES = {"accuracy": "accuracy (greedy)", "structure": "structure reward",
                 "completion_tokens": "completion tokens", "cut_off": "cut off"}


def results_table(results: Sequence[EvalResult], labels: Sequence[str]) -> Table:
    """Evaluations side by side, one row each; the best value of each quality metric is bold."""
    names = metric_names(results)
    table = Table(title="Evaluation" if len(results) == 1 else "Evaluations side by side")
    for column in ("eval", "model", "adapter", "data"):
        table.add_column(column, overflow="fold")
    for name in names:
        table.add_column(METRIC_TITLES.get(name, name), justify="right")
    best = {name: max((r.metrics[name] for r in results if name in r.metrics), default=None)
            for name in names if name not in ("completion_tokens", "cut_off", "problems")}
    for label, result in zip(labels, results):
        cells = []
        for name in names:
            value = result.metrics.get(name)
            text = format_metric(name, value)
            cells.append(f"[bold]{text}[/]" if len(results) > 1 and value is not None
                         and value == best.get(name) else text)
        table.add_row(escape(label), escape(result.model), escape(result.adapter or "-"),
                      escape(f"{result.data} ({result.split})"), *cells)
    return table


def comparison_warnings(results: Sequence[EvalResult], labels: Sequence[str]) -> list[str]:
    """Why the numbers of a comparison may not be comparable: different problems or settings."""
    warnings = []
    for what, key in (("data", lambda r: (r.data, r.split, r.settings.get("seed"),
                                          r.metrics.get("problems"))),
                      ("structure scoring", lambda r: (r.settings.get("decomposer"),
                                                       r.settings.get("judge"),
                                                       r.settings.get("normalize")))):
        if len({json.dumps(key(r)) for r in results}) > 1:
            listing = "; ".join(f"{label}: {key(r)}" for label, r in zip(labels, results))
            warnings.append(f"the evaluations differ in {what}: {listing}")
    return warnings


def scored_pair(item: dict[str, Any]) -> ScoredPair:
    """One eval item as a teacher/student step alignment (for `render.pair_table`)."""
    teacher = [Step(**s) for s in item["teacher_steps"]]
    student = [Step(**s) for s in item["student_steps"]]
    score = StructureScore(item["structure"], item["step_rewards"], len(teacher), len(student),
                           item["first_divergence"])
    return ScoredPair(item["id"], teacher, student, score)
