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


def saved_by_an_editor(path, execution_count=1):
    """The notebook as Jupyter or VS Code saves it after running it: outputs, execution counts,
    new cell ids, the kernel's metadata (with this machine's Python version) and view state."""
    nb = nbformat.read(path, as_version=4)
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py",
                                    "mimetype": "text/x-python", "name": "python", "pygments_lexer": "ipython3",
                                    "nbconvert_exporter": "python", "version": "3.12.9"}
    nb.metadata["vscode"] = {"interpreter": {"hash": "0" * 64}}
    for i, cell in enumerate(nb.cells):
        cell.id = f"edited-{i}"
        cell.metadata.update({"scrolled": True, "collapsed": False,
                              "execution": {"iopub.execute_input": "2026-12-01T08:00:00.000Z"}})
        if cell.cell_type == "code":
            cell.execution_count = execution_count
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"run {execution_count}\n"),
                            nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo="})]
    nbformat.write(nb, path)


def test_saving_with_outputs_and_editor_metadata_reuses_the_cache(tree, runs):
    """Running and saving the notebook in an editor changes nothing the outputs depend on."""
    notebook = tree / "exercise_sheet.ipynb"
    assert build(tree) is True and len(runs) == 1
    before = notebook.read_bytes()
    saved_by_an_editor(notebook)
    assert notebook.read_bytes() != before
    assert build(tree) is False and len(runs) == 1
    saved_by_an_editor(notebook, execution_count=7)   # run again, saved again
    assert build(tree) is False and len(runs) == 1


@pytest.mark.parametrize("change", ["source", "markdown", "type", "order", "new cell", "tags"])
def test_a_changed_cell_executes_it_again(tree, runs, change):
    """The key is every cell's type, source and tags, in order."""
    notebook = tree / "exercise_sheet.ipynb"
    build(tree)
    nb = nbformat.read(notebook, as_version=4)
    if change == "source":
        nb.cells[1].source = nb.cells[1].source.replace("print(1)", "print(2)")
    elif change == "markdown":
        nb.cells[0].source += " (edited)"
    elif change == "type":
        nb.cells[0] = nbformat.v4.new_code_cell(nb.cells[0].source)
    elif change == "order":
        nb.cells.reverse()
    elif change == "new cell":
        nb.cells.append(nbformat.v4.new_code_cell(""))
    elif change == "tags":
        nb.cells[1].metadata["tags"] = ["prose"]   # decides whether the PDF shows the code
    nbformat.write(nb, notebook)
    assert build(tree) is True and len(runs) == 2


@pytest.mark.parametrize("damage", ["truncated", "conflict"])
def test_an_unreadable_notebook_is_refused_with_the_line_and_the_way_back(tree, runs, damage):
    """An editor that stopped while saving leaves half a file; a merge of the two partners'
    commits can leave git's conflict markers. Neither is executed: the error names the file,
    the line where its JSON breaks and how to get the notebook back."""
    notebook = tree / "exercise_sheet.ipynb"
    text = notebook.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    if damage == "truncated":
        notebook.write_text(text[:len(text) // 2], encoding="utf-8")
    else:
        at = next(i for i, line in enumerate(lines) if "print(1)" in line)
        notebook.write_text("".join(lines[:at] + ["<<<<<<< HEAD\n", lines[at], "=======\n",
                                                  lines[at].replace("1", "2"), ">>>>>>> partner\n"]
                                    + lines[at + 1:]), encoding="utf-8")
    with pytest.raises(export.BuildError) as err:
        build(tree)
    message = str(err.value)
    assert message.startswith("exercise_sheet.ipynb is not a readable notebook: its JSON breaks at line ")
    assert "git checkout -- exercise_sheet.ipynb" in message and "nbdime" in message
    if damage == "conflict":
        assert f"merge-conflict markers (line {at + 1}: '<<<<<<<')" in message
    assert runs == []
