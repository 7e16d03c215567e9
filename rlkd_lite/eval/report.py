"""A run's report: one self-contained HTML file, `rlkd-lite report RUN_DIR`.

It shows the run's configuration, training curves from metrics.jsonl (each reward, the total
reward, loss, step time and tokens/s; PNG images drawn with matplotlib's Agg renderer and
embedded as base64, so the file needs nothing beside it), the eval table when RUN/eval.json
exists, and the latest sample completions from samples.jsonl with their teacher/student step
alignment (the same tables `rlkd-lite score --show` prints, the first divergence marked).
"""
from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from rlkd_lite.console import console
from rlkd_lite.data.jsonl import is_integer, is_number, json_type, write_text_atomic
from rlkd_lite.errors import InputError, RlkdError
from rlkd_lite.eval.alignment import ScoredPair
from rlkd_lite.eval.evaluate import EVAL_FILE, METRIC_TITLES, format_metric, metric_names, read_eval
from rlkd_lite.eval.render import pair_table
from rlkd_lite.structure.reward import StructureScore
from rlkd_lite.structure.steps import parse_steps
from rlkd_lite.train.config import REWARDS
from rlkd_lite.train.run_dir import RunDir, read_log_rows

REPORT_FILE = "report.html"
CURVES = (*((name, f"{name} reward") for name in REWARDS),
          ("reward", "total reward (weighted)"), ("loss", "loss"),
          ("step_time_s", "step time (s)"),
          ("tokens_per_s", "rollout tokens per second (steps that generate)"),
          ("completion_cut_off", "share of rollouts cut off by max_completion_length"))
"""(metrics.jsonl key, chart title) of every curve drawn when the run logged it."""
CONFIG_SHOWN = ("model", "method", "backend", "data", "subset", "decomposer", "judge",
                "max_steps", "num_generations", "max_completion_length", "learning_rate")
"""The configuration fields at the top of the report (config.yaml has them all)."""
_STYLE = """
.rlkd-report { font-family: system-ui, sans-serif; max-width: 1200px; margin: 1em auto; }
.rlkd-report table.kv td, .rlkd-report table.kv th { padding: 2px 10px; text-align: left; }
.rlkd-report table.kv { border-collapse: collapse; }
.rlkd-report table.kv tr:nth-child(even) { background: #f3f3f3; }
.rlkd-report .curves { display: flex; flex-wrap: wrap; gap: 8px; }
.rlkd-report .curves img { width: 380px; border: 1px solid #ddd; }
.rlkd-report pre { white-space: pre-wrap; background: #f7f7f7; padding: 6px; }
.rlkd-report pre.rich { background: #fff; font-size: 12px; line-height: 1.25; }
.rlkd-report .note { color: #a60; }
"""


_INTEGER = ("an integer", is_integer)
_STRING = ("a string", lambda value: isinstance(value, str))
SAMPLE_FIELDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "step": _INTEGER, "question": _STRING, "completion": _STRING,
    "rewards": ("an object of numbers",
                lambda value: isinstance(value, dict) and all(map(is_number, value.values())))}
"""The samples.jsonl fields the report reads where present: (expected type, test)."""
ALIGNMENT_FIELDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "student_steps": _STRING, "teacher_steps": _STRING,
    "step_rewards": ("an array of numbers",
                     lambda value: isinstance(value, list) and all(map(is_number, value))),
    "first_divergence": ("an integer or null", lambda value: value is None or is_integer(value))}
"""The fields of a sample's step alignment, all needed once `student_steps` is there."""


def _check_fields(row: dict[str, Any], fields: dict[str, tuple[str, Callable[[Any], bool]]],
                  path: Path, line: int, *, required: bool) -> None:
    for field, (expected, test) in fields.items():
        if field not in row:
            if required:
                raise InputError("missing", path=str(path), line=line, field=field)
        elif not test(row[field]):
            raise InputError(f"expected {expected}, got {json_type(row[field])}",
                             path=str(path), line=line, field=field)


def check_metric_row(row: dict[str, Any], path: Path, line: int) -> None:
    """Raise InputError for a metrics.jsonl row that cannot be drawn: no integer step, or a
    curve's value that is not a number (null counts as not logged)."""
    _check_fields(row, {"step": _INTEGER}, path, line, required=True)
    _check_fields({key: value for key, value in row.items() if value is not None},
                  {key: ("a number", is_number) for key, _ in CURVES}, path, line,
                  required=False)


def check_sample_row(row: dict[str, Any], path: Path, line: int) -> None:
    """Raise InputError for a samples.jsonl row the report cannot show: a field it reads holds
    the wrong type, or a field of the step alignment is missing."""
    _check_fields(row, SAMPLE_FIELDS, path, line, required=False)
    if "student_steps" in row:  # grpo and sft runs log no alignment
        _check_fields(row, ALIGNMENT_FIELDS, path, line, required=True)


def warn_skipped(problems: list[InputError]) -> None:
    """One terminal warning for the lines of a log the report leaves out: the first line's
    problem, and how many lines there are."""
    if problems:
        count = ("line skipped" if len(problems) == 1
                 else f"{len(problems)} lines skipped, this is the first")
        console.print(f"[yellow]warning:[/] {escape(str(problems[0]))} ({count})",
                      highlight=False, soft_wrap=True)


def read_metrics(run: RunDir) -> tuple[list[dict[str, Any]], list[InputError]]:
    """The drawable rows of metrics.jsonl and the problem of each line skipped (a torn last line
    after a crash is skipped, not fatal). A log with lines but no drawable row is an error."""
    if not run.metrics.is_file():
        raise RlkdError(f"{run.path}: no {run.metrics.name} (not a run directory, or the run has "
                        f"not logged a step yet)")
    problems: list[InputError] = []
    # read_log_rows, not RunDir.read_log: an empty log is an error worth naming here.
    rows = read_log_rows(run.metrics, check_metric_row, problems.append)
    if not rows:
        first = problems[0]  # there is one: read_log_rows refuses a file with no lines
        raise InputError(f"{first.problem}; no line of this file is usable ({len(problems)} "
                         f"skipped, this is the first)", path=first.path, line=first.line,
                         field=first.field)
    return rows, problems


def read_run_config(run: RunDir) -> tuple[dict[str, Any], str | None]:
    """The settings in a run's config.yaml, and why they could not be read (None when they
    could, or when the run has no config.yaml)."""
    if not run.config.is_file():
        return {}, None
    try:
        return run.read_config(), None
    except InputError as exc:
        return {}, str(exc)


def curve_png(rows: list[dict[str, Any]], key: str, title: str) -> bytes | None:
    """A line chart of `key` over the steps as PNG bytes; None when no row has a number for it."""
    points = [(row["step"], row[key]) for row in rows
              if isinstance(row.get(key), (int, float)) and isinstance(row.get("step"), int)]
    if not points:
        return None
    # A bare Figure (no pyplot) draws with Agg and leaves the caller's backend alone.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.2, 2.6), dpi=110)
    axes = figure.subplots()
    steps, values = zip(*points)
    axes.plot(steps, values, marker="o" if len(points) <= 30 else None, markersize=3)
    axes.set_title(title, fontsize=10)
    axes.set_xlabel("step", fontsize=8)
    axes.tick_params(labelsize=8)
    axes.grid(alpha=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def latest_samples(run_dir: str | Path, limit: int,
                   on_error: Callable[[InputError], None] = lambda _: None
                   ) -> list[dict[str, Any]]:
    """The newest logged sample (a row of samples.jsonl) of each of up to `limit` different
    questions, newest first; [] when the run logged none. (One logging step holds completions
    of one prompt group, so different questions come from several steps.) A line that cannot
    be read or shown (`check_sample_row`) is skipped and passed to `on_error`."""
    rows = RunDir.read_log(RunDir(Path(run_dir)).samples, on_error, check=check_sample_row)
    newest: dict[str, dict[str, Any]] = {}
    # A stable sort keeps the log's order within a step; the first row of each question wins.
    for row in sorted(rows, key=lambda row: -row.get("step", 0)):
        newest.setdefault(row.get("question", ""), row)
    return list(newest.values())[:limit]


def sample_pair(sample: dict[str, Any], label: str) -> ScoredPair | None:
    """A logged sample's teacher/student step alignment; None when the run scored no structure
    (grpo and sft runs log no steps)."""
    if "student_steps" not in sample:
        return None
    teacher, student = parse_steps(sample["teacher_steps"]), parse_steps(sample["student_steps"])
    step_rewards = sample["step_rewards"]
    reward = sample.get("rewards", {}).get("structure", float(sum(step_rewards)))
    score = StructureScore(reward, step_rewards, len(teacher), len(student),
                           sample["first_divergence"])
    return ScoredPair(label, teacher, student, score)


def _rich_html(renderable: Any) -> str:
    """A rich renderable (a step table) as an HTML fragment with inline colours."""
    # Not Jupyter's console: in a notebook it would display the table instead of recording it.
    recorder = Console(record=True, width=130, file=io.StringIO(), force_terminal=True,
                       force_jupyter=False, color_system="truecolor")
    recorder.print(renderable)
    return recorder.export_html(inline_styles=True, code_format='<pre class="rich">{code}</pre>')


def _key_value_table(rows: list[tuple[str, str]]) -> str:
    cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f'<table class="kv">{cells}</table>'


def _eval_section(path: Path) -> str:
    """The run's eval.json as a table: an `rlkd-lite eval` result, or any other flat JSON object
    (`gsrm train` writes its held-out scores there) with its numbers as they are."""
    try:
        result = read_eval(path)
    except InputError:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            problem = None if isinstance(raw, dict) else f"{json_type(raw)}, not a JSON object"
        except ValueError as exc:  # not JSON, or not UTF-8
            problem = f"not valid JSON ({exc})"
        if problem:
            console.print(f"[yellow]warning:[/] {escape(str(path))}: {escape(problem)}; the "
                          f"report shows no evaluation", highlight=False, soft_wrap=True)
            return f'<h2>Evaluation</h2><p class="note">{html.escape(path.name)} is unreadable</p>'
        rows = [(key, f"{value:.4g}" if isinstance(value, float) else str(value))
                for key, value in raw.items() if isinstance(value, (int, float, str))]
        return f"<h2>Evaluation</h2>{_key_value_table(rows)}"
    what = [("model", result.model), ("adapter", result.adapter or "-"),
            ("data", f"{result.data} ({result.split})")]
    metrics = [(METRIC_TITLES.get(name, name), format_metric(name, result.metrics.get(name)))
               for name in metric_names([result])]
    return f"<h2>Evaluation</h2>{_key_value_table(what + metrics)}"


def _samples_section(samples: list[dict[str, Any]]) -> str:
    parts = ["<h2>Latest samples</h2>"]
    for index, sample in enumerate(samples, 1):
        rewards = ", ".join(f"{name} {value:g}"
                            for name, value in sample.get("rewards", {}).items())
        parts.append(f"<h3>Sample {index} (step {sample.get('step', '?')})</h3><p><b>Question:</b> "
                     f"{html.escape(sample.get('question', ''))}</p>"
                     f"<p><b>Rewards:</b> {html.escape(rewards or '-')}</p>"
                     f"<pre>{html.escape(sample.get('completion', ''))}</pre>")
        pair = sample_pair(sample, f"sample {index}")
        if pair is not None:
            parts.append(_rich_html(pair_table(pair)))
    return "".join(parts)


def build_report(run_dir: str | Path, *, samples: int = 3, output: str | Path | None = None
                 ) -> Path:
    """Write the report of a run (default RUN/report.html) atomically and return its path."""
    run = RunDir(Path(run_dir).expanduser())
    if not run.path.is_dir():
        raise RlkdError(f"{run.path}: no such run directory")
    rows, skipped = read_metrics(run)
    warn_skipped(skipped)
    config, config_problem = read_run_config(run)
    title = f"rlkd-lite run {run.path.resolve().name}"
    parts = [f"<h1>{html.escape(title)}</h1>"]
    if config_problem:
        # The configuration is a few lines of the report: the curves and samples still help.
        console.print(f"[yellow]warning:[/] {escape(config_problem)}; the report shows no "
                      f"configuration", highlight=False, soft_wrap=True)
        parts.append(f'<p class="note">{html.escape(config_problem)}</p>')
    parts.append(_key_value_table([(name, str(config[name])) for name in CONFIG_SHOWN
                                   if name in config]
                                  + [("steps logged", str(len(rows)))]))
    if skipped:
        parts.append(f'<p class="note">{len(skipped)} line(s) of {run.metrics.name} skipped '
                     f'(unreadable, or a field of the wrong type)</p>')
    images = []
    for key, chart_title in CURVES:
        png = curve_png(rows, key, chart_title)
        if png is not None:
            images.append(f'<img alt="{html.escape(chart_title)}" '
                          f'src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">')
    parts.append(f'<h2>Training curves</h2><div class="curves">{"".join(images)}</div>')
    if (run.path / EVAL_FILE).is_file():
        parts.append(_eval_section(run.path / EVAL_FILE))
    skipped_samples: list[InputError] = []
    shown = latest_samples(run.path, samples, on_error=skipped_samples.append)
    warn_skipped(skipped_samples)
    if shown:
        parts.append(_samples_section(shown))
    document = (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}'
                f'</title><style>{_STYLE}</style></head>\n<body><div class="rlkd-report">\n'
                + "\n".join(parts) + "\n</div></body></html>\n")
    out = Path(output) if output else run.path / REPORT_FILE
    write_text_atomic(out, document)
    return out
