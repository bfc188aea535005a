"""./export.sh end to end, in a copy of the repository: the PDF, its first page, its glyphs,
its structure, and what happens when a cell fails."""

import hashlib
import json
import re
import subprocess

import nbformat
import pytest

from conftest import REPO, copy_of_repo, run_export
from sheet05 import export


def pdftotext(pdf, *args):
    return subprocess.run(["pdftotext", "-layout", *args, str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout


def page_count(pdf):
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"Pages:\s+(\d+)", info).group(1)), re.search(r"Page size:\s+(.*)", info).group(1)


@pytest.mark.slow
def test_export_builds_the_submission(exported):
    repo, result = exported
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    pdf = repo / "submission.pdf"
    assert pdf.is_file()
    # progress: every step printed with its duration
    for n in range(1, 8):
        assert f"[{n}/7]" in result.stdout
    assert len(re.findall(r"done in \d+\.\d s", result.stdout)) == 7

    pages, size = page_count(pdf)
    assert 12 <= pages <= 80, pages
    assert "A4" in size

    first = pdftotext(pdf, "-f", "1", "-l", "1")
    assert "Ada Lovelace" in first and "Alan Turing" in first
    assert "Exercise sheet 5" in first and "Machine Learning and Physics" in first

    text = pdftotext(pdf)
    # Greek letters and maths symbols survived the fonts (the stock template drops them)
    for glyph in ["λ", "σ", "±", "‖"]:
        assert glyph in text, glyph
    # the structure: theory, notebook, appendix, and exercise 2's sub-questions
    for heading in ["Part I: Theory", "Part II: Notebook", "Part III: Appendix",
                    "2(a)", "2(b)", "2(c)", "1(a)", "sheet05/data.py"]:
        assert heading in text, heading


@pytest.mark.slow
def test_failing_cell_fails_the_export_and_keeps_the_old_pdf(exported):
    repo, result = exported
    assert result.returncode == 0
    pdf = repo / "submission.pdf"
    before = hashlib.sha256(pdf.read_bytes()).hexdigest()

    nb_path = repo / "exercise_sheet.ipynb"
    original = nb_path.read_text()
    nb = nbformat.read(nb_path, as_version=4)
    bad = nbformat.v4.new_code_cell("raise RuntimeError('deliberately broken cell')")
    nb.cells.insert(2, bad)  # right after the setup cell, so it fails within seconds
    nbformat.write(nb, nb_path)
    try:
        failed = run_export(repo, "--authors", "Ada Lovelace", "Alan Turing")
    finally:
        nb_path.write_text(original)
    assert failed.returncode != 0
    assert "cell 3" in failed.stderr and "deliberately broken cell" in failed.stderr
    assert "Exercise sheet 5: notebook part" in failed.stderr  # the heading above the cell
    assert hashlib.sha256(pdf.read_bytes()).hexdigest() == before


def test_authors_option_needs_two_names(tmp_path):
    result = subprocess.run(["./export.sh", "--authors", "Only One"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2 and "two names" in result.stderr


def test_unknown_option_is_refused():
    result = subprocess.run(["./export.sh", "--colour"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2 and "--colour" in result.stderr


def test_authors_file_is_the_default(tmp_path):
    f = tmp_path / "authors.txt"
    f.write_text("# comment\nMarie Curie\n\nPierre Curie\n")
    assert export.read_authors(f) == ["Marie Curie", "Pierre Curie"]
    with pytest.raises(export.BuildError, match="two"):
        export.build(["Just One"])


def test_appendix_lists_the_helper_modules_the_notebook_imports():
    nb = nbformat.read(REPO / "exercise_sheet.ipynb", as_version=4)
    modules = export.imported_helper_modules(nb)
    assert "data" in modules and "report" in modules
    assert "export" not in modules  # plumbing the results do not depend on


def test_bad_latex_is_reported_with_its_error(tmp_path):
    tex = tmp_path / "broken.tex"
    tex.write_text("\\documentclass{article}\\begin{document}\\undefinedmacro\\end{document}\n")
    with pytest.raises(export.BuildError, match="Undefined control sequence"):
        export.run_latexmk(tex)


def test_missing_glyph_is_an_error(tmp_path):
    tex = tmp_path / "glyph.tex"
    tex.write_text("\\documentclass{article}\\usepackage{fontspec}\\setmainfont{Latin Modern Roman}"
                   "\\begin{document}λ\\end{document}\n")
    with pytest.raises(export.BuildError, match="glyphs missing"):
        export.run_latexmk(tex)
