"""The tutorial notebooks: jupytext sources, the committed .ipynb in sync with them, and they run.

Each notebook's source is ``notebooks/NN_name.py`` (jupytext percent format); ``NN_name.ipynb`` is
generated from it (``jupytext --update --to ipynb``) and committed without outputs. The execution
test runs each source top to bottom in a fresh kernel with the quick settings
(``KERAS_SERAN_SMALL=1``), in a temporary working directory, and fails on any cell error.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
jupytext = pytest.importorskip("jupytext")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"
EXPECTED = ["01_explore_sera", "02_train_and_evaluate", "03_export_and_deploy"]
CELL_TIMEOUT = 600


def cells(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source) for c in nb.cells]


def test_every_notebook_is_a_source_and_ipynb_pair():
    sources = {p.stem for p in NOTEBOOK_DIR.glob("[0-9]*.py")}
    notebooks = {p.stem for p in NOTEBOOK_DIR.glob("*.ipynb")}
    assert sources == set(EXPECTED), f"notebook sources: {sorted(sources)}"
    assert notebooks == sources, (
        f"without a source: {sorted(notebooks - sources)}; "
        f"without an .ipynb: {sorted(sources - notebooks)}"
    )


@pytest.mark.parametrize("stem", EXPECTED)
def test_ipynb_is_generated_from_its_source_without_outputs(stem):
    path = NOTEBOOK_DIR / f"{stem}.ipynb"
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    expected = cells(jupytext.read(NOTEBOOK_DIR / f"{stem}.py"))
    got = cells(nb)
    differ = [i for i, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b]
    assert got == expected, (
        f"notebooks/{stem}.ipynb differs from its source {stem}.py "
        f"(cells {differ[:5] or 'count'}: {len(got)} vs {len(expected)}); edit the .py, then run "
        f"`jupytext --update --to ipynb notebooks/{stem}.py`"
    )
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        assert cell.get("outputs") == [], f"{path.name} cell {i} has outputs: strip them"
        assert cell.get("execution_count") is None, (
            f"{path.name} cell {i} has execution_count {cell.get('execution_count')}: strip it"
        )
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.slow
@pytest.mark.parametrize("stem", EXPECTED)
def test_notebook_runs_top_to_bottom(stem, tmp_path, monkeypatch):
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    # The kernel is a child process: it inherits these, and imports keras_seran from this
    # checkout (not from another installed copy), which the first cell below checks.
    monkeypatch.setenv("KERAS_SERAN_SMALL", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    )
    nb = jupytext.read(NOTEBOOK_DIR / f"{stem}.py")
    nb.cells.insert(0, nbformat.v4.new_code_cell("import keras_seran\nprint(keras_seran.__file__)"))
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    t = time.perf_counter()
    client.execute()  # raises CellExecutionError (with the traceback) on any cell error
    seconds = time.perf_counter() - t
    imported = Path(nb.cells[0].outputs[0]["text"].strip()).resolve()
    print(f"{stem}: {seconds:.0f} s with KERAS_SERAN_SMALL=1, keras_seran from {imported}")
    assert imported.is_relative_to(REPO / "keras_seran"), (
        f"the kernel imported keras_seran from {imported}, not from {REPO}"
    )
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert not errors
    # every code cell ran
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code")
