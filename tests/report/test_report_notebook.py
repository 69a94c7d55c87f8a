"""notebooks/compare_runs.ipynb runs end to end on the records the tests produce."""

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[2]


def test_notebook_executes(run_folders, monkeypatch):
    monkeypatch.setenv("COMPARE_RUNS_DIRS", os.pathsep.join(map(str, (run_folders.a, run_folders.b,
                                                                      run_folders.failed))))
    notebook = nbformat.read(REPO / "notebooks" / "compare_runs.ipynb", as_version=4)
    NotebookClient(notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = " ".join(str(o.get("data", {}).get("text/plain", o.get("text", ""))) for o in outputs)
    assert "failed" in text and "e1: summary.csv" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3
