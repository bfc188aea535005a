"""Slow cells show a progress line while they run in Jupyter; the PDF shows none of it."""

import re

import nbformat
import pytest

from conftest import REPO

STEP = re.compile(r"^[^\n]*: (\d+)/(\d+)(?: in \d+\.\d s)?$")
SLOW_CELLS = ["fetch(log=print)", "results_a = {}", "def controls(", "cities_runs = {",
              "both_runs = {", "MassMeanProbe().fit", "def zoom_figure("]


def test_the_slow_cells_show_progress():
    nb = nbformat.read(REPO / "exercise_sheet.ipynb", as_version=4)
    for marker in SLOW_CELLS:
        cells = [c.source for c in nb.cells if c.cell_type == "code" and marker in c.source]
        assert len(cells) == 1 and "progress(" in cells[0], marker


@pytest.mark.slow
def test_the_executed_notebook_keeps_no_progress_line(exported):
    repo, result = exported
    assert result.returncode == 0, result.stderr[-3000:]
    nb = nbformat.read(repo / "build" / "exercise_sheet.executed.ipynb", as_version=4)
    left = [out for cell in nb.cells for out in cell.get("outputs", [])
            if STEP.match(out.get("text", "") or out.get("data", {}).get("text/plain", ""))]
    assert not left, left
