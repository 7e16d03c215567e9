"""Rich tables for structure scores: the summary, and teacher/student steps side by side."""
from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from rlkd_lite.eval.alignment import ScoredPair
from rlkd_lite.structure.steps import Step


def summary_table(summary: dict[str, Any]) -> Table:
    """The summary of a `score` run as a two-column table."""
    table = Table(title="Structure score", show_header=False)
    table.add_column("measure", style="bold")
    table.add_column("value", justify="right")
    divergence = summary["mean_first_divergence"]
    table.add_row("pairs", str(summary["pairs"]))
    table.add_row("mean reward", f"{summary['mean']:.3f}")
    table.add_row("median reward", f"{summary['median']:.3f}")
    table.add_row("full match (every teacher step 1)", f"{summary['full_match']:.1%}")
    table.add_row("mean first divergence (step, 1-based)",
                  "-" if divergence is None else f"{divergence + 1:.2f}")
    if summary["skipped"]:
        table.add_row("skipped (bad lines, unpaired)", str(summary["skipped"]), style="yellow")
    return table


def _step_cell(step: Step | None) -> Text:
    # Text, not markup: model output holds "[" and "\\[" (LaTeX), which markup would read.
    if step is None:
        return Text("-", style="dim")
    return Text.assemble(step.meta, "\n", ("Q: ", "cyan"), step.query, "\n", ("A: ", "cyan"),
                         step.answer)


def pair_table(pair: ScoredPair) -> Table:
    """Teacher and student steps aligned by position; the first divergence is marked in red."""
    score = pair.score
    table = Table(title=f"{escape(str(pair.id))}: reward {score.reward:g} "
                        f"({score.teacher_steps} teacher / {score.student_steps} student steps)",
                  show_lines=True)
    table.add_column("step", justify="right")
    table.add_column("teacher", ratio=1)
    table.add_column("student", ratio=1)
    table.add_column("reward", justify="right")
    for i in range(max(len(pair.teacher), len(pair.student))):
        reward = score.step_rewards[i] if i < len(score.step_rewards) else None
        diverged = i == score.first_divergence
        table.add_row(
            f"{i + 1}" + ("\n[bold red]first\ndivergence[/]" if diverged else ""),
            _step_cell(pair.teacher[i] if i < len(pair.teacher) else None),
            _step_cell(pair.student[i] if i < len(pair.student) else None),
            "-" if reward is None else f"{reward:g}",
            style="red" if diverged else None,
        )
    if not pair.teacher or not pair.student:
        side = "teacher" if not pair.teacher else "student"
        table.caption = f"the {side} has no steps, so the reward is 0"
    return table
