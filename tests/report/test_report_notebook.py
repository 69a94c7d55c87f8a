"""notebooks/compare_runs.ipynb runs end to end on the records the tests produce, started where
Jupyter starts it (notebooks/), with folders given relative to the repository root."""

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[2]


def test_notebook_executes(run_folders, monkeypatch):
    # relative to the repository root, not to notebooks/ where the kernel starts
    folders = [os.path.relpath(folder, REPO) for folder in (run_folders.a, run_folders.b, run_folders.failed)]
    monkeypatch.setenv("COMPARE_RUNS_DIRS", os.pathsep.join(folders))
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the kernel imports this checkout's package from notebooks/ too
    notebook = nbformat.read(REPO / "notebooks" / "compare_runs.ipynb", as_version=4)
    NotebookClient(notebook, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(REPO / "notebooks")}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = " ".join(str(o.get("data", {}).get("text/plain", o.get("text", ""))) for o in outputs)
    assert str(run_folders.a) in text  # the relative folder, found from the repository root
    assert "failed" in text and "e1: summary.csv" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 4  # a timeline among them
    assert "Per-request timeline of job" in text
