"""The Colab notebooks must not rot: each is executed headless in smoke mode (a tiny offline
model, synthetic data, two training steps, on the CPU) and fails on any cell error."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
SMOKE_TIMEOUT_S = 600
"""Per cell; the whole smoke run takes a minute or two on a CPU."""
PRODUCED = {
    "rlkd_colab.ipynb": ("rlkd-colab/adapter/adapter_model.safetensors", "rlkd-colab/eval.json",
                         "rlkd-colab/report.html", "base-colab/eval.json",
                         "rlkd-colab-adapter.zip"),
    "gsrm_colab.ipynb": ("gsrm-labels.jsonl", "gsrm-colab/adapter/adapter_model.safetensors",
                         "gsrm-colab/eval.json",
                         "rlkd-gsrm-colab/adapter/adapter_model.safetensors",
                         "rlkd-gsrm-colab/report.html"),
}
"""Files (under runs/) each notebook must have written in smoke mode."""


def test_there_are_notebooks():
    assert [path.name for path in NOTEBOOKS] == sorted(PRODUCED)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_is_ready_for_colab(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    sources = [cell.source for cell in notebook.cells]
    assert "colab.research.google.com/assets/colab-badge.svg" in sources[0]
    assert f"/notebooks/{path.name})" in sources[0]  # the badge opens this very notebook
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert not any(cell.outputs or cell.execution_count for cell in code), \
        "commit notebooks without outputs"
    assert any('os.environ.get("RLKD_NOTEBOOK_SMOKE") == "1"' in cell.source for cell in code)
    installs = [cell.source for cell in code if "pip install" in cell.source]
    assert len(installs) == 1 and installs[0].startswith("if not SMOKE:")


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_runs_in_smoke_mode(path, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("RLKD_NOTEBOOK_SMOKE", "1")
    # The kernel spec starts "python" from PATH: make that this environment's interpreter.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=SMOKE_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on any error
    for produced in PRODUCED.get(path.name, ()):
        assert (tmp_path / "runs" / produced).is_file(), produced
