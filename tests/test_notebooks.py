"""The tutorial notebooks: committed without outputs, in sync with their generator, and they run.

The execution test runs each notebook top to bottom in a fresh kernel with the quick settings
(``KERAS_SERAN_SMALL=1``), in a temporary working directory, and fails on any cell error.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPECTED = ["01_explore_sera.ipynb", "02_train_and_evaluate.ipynb", "03_export_and_deploy.ipynb"]
CELL_TIMEOUT = 600


def test_the_three_notebooks_exist():
    names = [p.name for p in NOTEBOOKS]
    for name in EXPECTED:
        assert name in names, f"notebooks/{name} is missing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_committed_with_outputs_stripped(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        assert cell.get("outputs") == [], f"{path.name} cell {i} has outputs: strip them"
        assert cell.get("execution_count") is None, \
            f"{path.name} cell {i} has execution_count {cell.get('execution_count')}: strip it"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


def test_notebooks_match_their_generator():
    """notebooks/*.ipynb are what scripts/build_notebooks.py writes (edit the script, not the JSON)."""
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "build_notebooks.py"), "--check"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_runs_top_to_bottom(name, tmp_path, monkeypatch):
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    # The kernel is a child process: it inherits these.
    monkeypatch.setenv("KERAS_SERAN_SMALL", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    t = time.perf_counter()
    client.execute()          # raises CellExecutionError (with the traceback) on any cell error
    seconds = time.perf_counter() - t
    print(f"{name}: {seconds:.0f} s with KERAS_SERAN_SMALL=1")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
    # every code cell ran
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code")
