"""`rlkd-lite report` from a recorded run directory: the HTML is self-contained, its plots are
real PNG images with something drawn on them, and the eval table and step alignments appear."""
from __future__ import annotations

import base64
import html as html_module
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rlkd_lite.cli import app
from rlkd_lite.data.jsonl import write_json_atomic
from rlkd_lite.eval.evaluate import EvalResult
from rlkd_lite.structure.steps import Step, render_steps

TEACHER = [Step("First find what the notebooks cost.", "9*14", "126"),
           Step("Then the rulers.", "5*4", "20")]
STUDENT = [Step("First find what the notebooks cost.", "9*14", "126"),
           Step("Add everything.", "126+20", "146")]
# Logged by an RLKD run: every reward, loss, step time, tokens/s and the share of rollouts cut
# off (step 2 lacks both: it did not generate).
METRICS = [
    {"step": 1, "step_time_s": 7.5, "loss": 0.0, "accuracy": 0.0, "format": 0.0,
     "tag_count": 0.25, "structure": 0.5, "reward": 10.0, "tokens_per_s": 50.9,
     "completion_cut_off": 0.5},
    {"step": 2, "step_time_s": 10.8, "loss": 0.01, "accuracy": 0.25, "format": 0.0,
     "tag_count": 0.5, "structure": 0.75, "reward": 21.0},
    {"step": 3, "step_time_s": 9.1, "loss": -0.02, "accuracy": 0.5, "format": 0.25,
     "tag_count": 0.5, "structure": 1.25, "reward": 36.0, "tokens_per_s": 44.0,
     "completion_cut_off": 0.125},
]
CURVE_TITLES = ["accuracy reward", "format reward", "tag_count reward", "structure reward",
                "total reward (weighted)", "loss", "step time (s)",
                "rollout tokens per second (steps that generate)",
                "share of rollouts cut off by max_completion_length"]


def jsonl(rows) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def sample(step: int, question: str) -> dict:
    return {"step": step, "question": question, "completion": "9 x 14 = 126 <b>not html</b>",
            "rewards": {"accuracy": 0.0, "structure": 1.0},
            "student_steps": render_steps(STUDENT), "teacher_steps": render_steps(TEACHER),
            "step_rewards": [1.0, 0.0], "first_divergence": 1}


@pytest.fixture
def recorded_run(tmp_path) -> Path:
    run = tmp_path / "rlkd-run"
    run.mkdir()
    (run / "config.yaml").write_text("model: qwen2.5-1.5b\nmethod: rlkd\ndata: synthetic\n")
    (run / "metrics.jsonl").write_text(jsonl(METRICS))
    # As training logs them: each logging step writes completions of one prompt group.
    (run / "samples.jsonl").write_text(jsonl(
        [sample(step, question) for step, question in ((1, "an early question"),
                                                       (2, "a second question"),
                                                       (3, "Nadia buys notebooks"))
         for _ in range(2)]))
    return run


def report(*args: str):
    result = CliRunner().invoke(app, ["report", *args])
    return result.exit_code, result.output


def embedded_images(html: str) -> list[bytes]:
    return [base64.b64decode(data)
            for data in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)]


def test_report_embeds_a_curve_per_logged_metric(recorded_run):
    from matplotlib.image import imread

    code, output = report(str(recorded_run))
    assert code == 0, output
    html = (recorded_run / "report.html").read_text()
    assert re.findall(r'<img alt="([^"]+)"', html) == CURVE_TITLES
    assert "<img" in html and 'src="http' not in html and "<link" not in html  # self-contained
    images = embedded_images(html)
    assert len(images) == len(CURVE_TITLES)
    for png in images:
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        pixels = imread(io.BytesIO(png))
        height, width = pixels.shape[:2]
        assert height > 100 and width > 200
        assert pixels[..., :3].std() > 0.05  # lines, axes and text, not a blank canvas


def test_report_shows_config_eval_and_latest_samples_aligned(recorded_run):
    write_json_atomic(recorded_run / "eval.json", EvalResult(
        model="qwen2.5-1.5b", adapter=str(recorded_run), run=str(recorded_run), data="synthetic",
        split="test", settings={}, metrics={"problems": 20, "accuracy": 0.35, "pass@4": 0.6,
                                            "structure": 1.125, "completion_tokens": 88.0}
    ).to_json())
    code, output = report(str(recorded_run), "--samples", "2")
    assert code == 0, output
    html = (recorded_run / "report.html").read_text()
    assert "<th>model</th><td>qwen2.5-1.5b</td>" in html
    assert "<th>steps logged</th><td>3</td>" in html
    for text in ("<h2>Evaluation</h2>", "accuracy (greedy)", "35.0%", "pass@4", "60.0%",
                 "1.125", "88.0"):
        assert text in html, text
    # The newest sample of the two newest questions, escaped, with their step tables.
    assert "Sample 1 (step 3)" in html and "Sample 2 (step 2)" in html
    assert "Nadia buys notebooks" in html and "a second question" in html
    assert "an early question" not in html
    assert "&lt;b&gt;not html&lt;/b&gt;" in html
    assert html.count("Rewards:") == 2
    assert "First find what the notebooks cost." in html and "126+20" in html
    assert "divergence" in html  # the first divergence is marked in the step table


def test_report_survives_a_torn_metrics_line_and_writes_elsewhere(recorded_run, tmp_path):
    with open(recorded_run / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 4, "loss": 0.')  # a crash mid-write
    (recorded_run / "samples.jsonl").unlink()
    code, output = report(str(recorded_run), "--output", str(tmp_path / "out.html"))
    assert code == 0, output
    html = (tmp_path / "out.html").read_text()
    assert "1 line(s) of metrics.jsonl skipped" in html
    assert "Samples" not in html and "Evaluation" not in html
    assert len(embedded_images(html)) == len(CURVE_TITLES)


def test_report_shows_another_writers_eval_json_as_it_is(recorded_run):
    # `gsrm train` writes its held-out decomposition scores to RUN/eval.json.
    (recorded_run / "eval.json").write_text(json.dumps(
        {"examples": 12, "parse_rate": 0.9166666, "mean_structure_reward": 2.5,
         "per_example": [1, 2]}))
    code, output = report(str(recorded_run))
    assert code == 0, output
    html = (recorded_run / "report.html").read_text()
    assert "<th>parse_rate</th><td>0.9167</td>" in html and "<th>examples</th><td>12</td>" in html
    assert "per_example" not in html


def test_report_errors_are_clean(tmp_path):
    code, output = report(str(tmp_path / "nothere"))
    assert code == 1 and "no such run directory" in output
    code, output = report(str(tmp_path))
    assert code == 1 and "no metrics.jsonl" in output
    (tmp_path / "metrics.jsonl").write_text("")
    code, output = report(str(tmp_path))
    assert code == 1 and "empty file" in output


def test_report_and_compare_need_no_model_stack(recorded_run):
    """Reading runs and evaluations stays fast: no torch, transformers or model code imported."""
    probe = f"""
import sys
from rlkd_lite.eval.evaluate import read_eval, results_table
from rlkd_lite.eval.report import build_report
build_report({str(recorded_run)!r})
heavy = ("torch", "transformers", "unsloth", "trl", "peft", "datasets", "rlkd_lite.structure.llm")
print(sorted(m for m in heavy if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("config_text, problem", [
    ("", "config.yaml: empty, where the run's settings were expected"),
    ("method: rlkd\nmodel: [x",
     "config.yaml:2: not valid YAML: expected ',' or ']', but got '<stream end>'"),
    ("- qwen2.5-1.5b\n", "config.yaml: a list, where the run's settings were expected"),
])
def test_report_without_a_readable_config_warns_and_goes_on(recorded_run, config_text, problem):
    """The configuration is a few lines at the top; the curves, eval and samples matter more."""
    (recorded_run / "config.yaml").write_text(config_text)
    code, output = report(str(recorded_run))
    assert code == 0, output
    assert " ".join(output.split()).startswith(
        f"warning: {recorded_run / problem}; the report shows no configuration")
    assert "Traceback" not in output
    html = (recorded_run / "report.html").read_text()
    assert f'<p class="note">{html_module.escape(str(recorded_run / problem))}</p>' in html
    assert "<th>model</th>" not in html and "<th>steps logged</th><td>3</td>" in html
    assert len(embedded_images(html)) == len(CURVE_TITLES)


def test_report_warns_on_the_terminal_about_skipped_metrics_lines(recorded_run):
    with open(recorded_run / "metrics.jsonl", "a") as handle:
        handle.write(jsonl([{"step": "4", "reward": 1.0}, {"reward": 2.0},
                            {"step": 5, "reward": "high"}, {"step": True, "loss": 0.1}]))
        handle.write('{"step": 6, "loss": 0.')  # a crash mid-write
    code, output = report(str(recorded_run))
    assert code == 0, output
    metrics = recorded_run / "metrics.jsonl"
    assert " ".join(output.split()).startswith(
        f"warning: {metrics}:4: field 'step': expected an integer, got a string "
        f"(5 lines skipped, this is the first)")
    html = (recorded_run / "report.html").read_text()
    assert "5 line(s) of metrics.jsonl skipped" in html
    assert "<th>steps logged</th><td>3</td>" in html


def test_report_of_a_metrics_log_without_a_usable_line_is_an_error(recorded_run):
    (recorded_run / "metrics.jsonl").write_text('{"step": 1, "loss": 0.\n[1, 2]\n')
    code, output = report(str(recorded_run))
    assert code == 1
    assert " ".join(output.split()) == (
        f"error: {recorded_run / 'metrics.jsonl'}:1: not valid JSON: Expecting ',' delimiter at "
        f"column 22; no line of this file is usable (2 skipped, this is the first)")
    assert not (recorded_run / "report.html").exists()


@pytest.mark.parametrize("bad, problem", [
    ({"question": 5}, "field 'question': expected a string, got a number"),
    ({"rewards": 123}, "field 'rewards': expected an object of numbers, got a number"),
    ({"rewards": {"structure": "high"}},
     "field 'rewards': expected an object of numbers, got an object"),
    ({"step": "3"}, "field 'step': expected an integer, got a string"),
    ({"step_rewards": None}, "field 'step_rewards': expected an array of numbers, got null"),
    ({"first_divergence": 1.5}, "field 'first_divergence': expected an integer or null, "
                                "got a number"),
    ({"teacher_steps": ["a step"]}, "field 'teacher_steps': expected a string, got an array"),
])
def test_report_skips_sample_rows_of_the_wrong_shape_with_a_warning(recorded_run, bad, problem):
    with open(recorded_run / "samples.jsonl", "a") as handle:
        handle.write(jsonl([{**sample(4, "a broken row"), **bad}]))
    code, output = report(str(recorded_run), "--samples", "2")
    assert code == 0, output
    assert " ".join(output.split()).startswith(
        f"warning: {recorded_run / 'samples.jsonl'}:7: {problem} (line skipped)")
    html = (recorded_run / "report.html").read_text()
    assert "Sample 1 (step 3)" in html and "a broken row" not in html


def test_report_skips_a_sample_whose_alignment_is_incomplete(recorded_run):
    row = sample(4, "a broken row")
    del row["first_divergence"]
    with open(recorded_run / "samples.jsonl", "a") as handle:
        handle.write(jsonl([row]))
    code, output = report(str(recorded_run))
    assert code == 0, output
    assert (f"warning: {recorded_run / 'samples.jsonl'}:7: field 'first_divergence': missing"
            in " ".join(output.split()))


@pytest.mark.parametrize("text, problem", [
    ("{not json", "not valid JSON (Expecting property name enclosed in double quotes: line 1 "
                  "column 2 (char 1))"),
    ("[1, 2]", "an array, not a JSON object"),
])
def test_report_warns_about_an_unreadable_eval_json(recorded_run, text, problem):
    (recorded_run / "eval.json").write_text(text)
    code, output = report(str(recorded_run))
    assert code == 0, output
    assert " ".join(output.split()).startswith(
        f"warning: {recorded_run / 'eval.json'}: {problem}; the report shows no evaluation")
    assert "eval.json is unreadable" in (recorded_run / "report.html").read_text()
