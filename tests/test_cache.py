"""The build executes the notebook again exactly when something its outputs depend on changed:
the notebook, a sheet05 module it imports (directly or through another one), requirements.txt,
the Python version or the data manifest. A theory-only change reuses the executed copy."""

import sys

import nbformat
import pytest

from sheet05 import export


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture
def tree(tmp_path):
    """A small repository: a notebook that imports two helper modules, one of which imports a
    third; requirements, data manifest, theory."""
    root = tmp_path / "repo"
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# A notebook"),
        nbformat.v4.new_code_cell("from sheet05.lse import lse\nfrom sheet05 import regions as rg\nprint(1)"),
    ])
    root.mkdir()
    nbformat.write(nb, root / "exercise_sheet.ipynb")
    write(root / "sheet05" / "__init__.py", "")
    write(root / "sheet05" / "lse.py", "from .helper import two\n")
    write(root / "sheet05" / "helper.py", "two = 2\n")
    write(root / "sheet05" / "regions.py", "import numpy\n")
    write(root / "sheet05" / "export.py", "# not imported by the notebook\n")
    write(root / "requirements.txt", "numpy==2.4.6\n")
    write(root / "data" / "lie_detection.sha256", "0" * 64 + "  datasets/cities.csv\n")
    write(root / "theory" / "theory.tex", "\\documentclass{article}\n")
    return root


@pytest.fixture
def runs(monkeypatch):
    """Replaces the kernel: records each execution instead of running the cells."""
    executed = []

    def fake_execute(src, dst=None, **_):
        executed.append(src)
        return nbformat.read(src, as_version=4)

    monkeypatch.setattr(export, "execute_notebook", fake_execute)
    return executed


def build(tree, rerun=False):
    nb, ran = export.executed_notebook(tree / "exercise_sheet.ipynb", tree / "build" / "executed.ipynb",
                                       rerun=rerun, root=tree)
    assert nb.metadata["sheet05"]["cache_key"]
    return ran


def test_inputs_are_the_notebook_its_modules_requirements_and_manifest(tree):
    inputs = [p.relative_to(tree).as_posix() for p in export.notebook_inputs(tree / "exercise_sheet.ipynb", tree)]
    assert inputs == ["exercise_sheet.ipynb", "sheet05/helper.py", "sheet05/lse.py", "sheet05/regions.py",
                      "requirements.txt", "data/lie_detection.sha256"]


@pytest.mark.parametrize("changed", ["exercise_sheet.ipynb", "sheet05/lse.py", "sheet05/helper.py",
                                     "sheet05/regions.py", "requirements.txt", "data/lie_detection.sha256"])
def test_a_changed_input_executes_the_notebook_again(tree, runs, changed):
    assert build(tree) is True and len(runs) == 1
    assert build(tree) is False and len(runs) == 1        # nothing changed: reused
    path = tree / changed
    if changed.endswith(".ipynb"):
        nb = nbformat.read(path, as_version=4)
        nb.cells[1].source += "\nprint(2)"
        nbformat.write(nb, path)
    else:
        path.write_text(path.read_text() + "# changed\n")
    assert build(tree) is True and len(runs) == 2
    assert build(tree) is False and len(runs) == 2


def test_theory_and_unimported_modules_do_not_execute_it(tree, runs):
    build(tree)
    (tree / "theory" / "theory.tex").write_text("\\documentclass{article}% edited\n")
    (tree / "sheet05" / "export.py").write_text("# edited, but the notebook does not import it\n")
    (tree / "authors.txt").write_text("Ada Lovelace\nAlan Turing\n")
    assert build(tree) is False and len(runs) == 1


def test_another_python_executes_it_again(tree, runs, monkeypatch):
    build(tree)
    monkeypatch.setattr(sys, "version", sys.version + " (another build)")
    assert build(tree) is True and len(runs) == 2


def test_rerun_forces_execution_and_a_damaged_cache_is_not_used(tree, runs):
    build(tree)
    assert build(tree, rerun=True) is True and len(runs) == 2
    (tree / "build" / "executed.ipynb").write_text("{ not json")
    assert build(tree) is True and len(runs) == 3


def test_the_key_is_a_content_hash_not_a_file_date(tree, runs):
    import os

    build(tree)
    for path in export.notebook_inputs(tree / "exercise_sheet.ipynb", tree):
        os.utime(path, (1e9, 1e9))   # touched, same content
    assert build(tree) is False and len(runs) == 1


def test_helper_imports_in_every_form(tmp_path):
    for name in ["a", "b", "c", "d", "e"]:
        write(tmp_path / f"{name}.py", "")
    code = ("from sheet05.a import x\nimport sheet05.b\nfrom sheet05 import (c,\n    d as dd)\n"
            "from .e import y\nfrom sheet05 import nonexistent\n")
    assert export.helper_imports(code, tmp_path) == ["a", "b", "e", "c", "d"]
