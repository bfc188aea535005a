"""Slow cells show a progress line while they run; the executed notebook (and so the PDF) keeps
one line per such cell, its final state."""

import re

import nbformat
import pytest

pytestmark = pytest.mark.slow

STEP = re.compile(r"^[^\n]*: (\d+)/(\d+)(?: in \d+\.\d s)?$")


def test_each_progress_display_leaves_one_final_line(exported):
    repo, result = exported
    assert result.returncode == 0, result.stderr[-3000:]
    nb = nbformat.read(repo / "build" / "exercise_sheet.executed.ipynb", as_version=4)
    found = 0
    for cell in nb.cells:
        lines = [out["data"]["text/plain"] for out in cell.get("outputs", [])
                 if out.get("output_type") == "display_data" and "text/plain" in out.get("data", {})
                 and STEP.match(out["data"]["text/plain"])]
        for line in lines:
            done, total = STEP.match(line).groups()
            assert done == total and " in " in line, f"a progress line was left unfinished: {line!r}"
        assert len(lines) <= 1, lines
        found += len(lines)
    assert found >= 7, "the slow cells (data, 2(a), controls, 2(b), 2(c), probes, zoom figures) show progress"
