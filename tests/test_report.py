"""Tables rendered for Jupyter (Markdown) and for the PDF (LaTeX)."""

import shutil
import subprocess

import pytest

from sheet05 import export, report


def test_escape_specials_and_brackets():
    assert report.latex_escape("a_b & 50% [x]") == r"a\_b \& 50\% {[}x{]}"


def test_markdown_table():
    md = report.table_markdown(["a", "b"], [[1, "x"], [2, "y"]])
    assert md.splitlines() == ["| a | b |", "|---|---|", "| 1 | x |", "| 2 | y |"]


def test_row_length_is_checked():
    with pytest.raises(ValueError, match="2 cells"):
        report.show_table(["a", "b"], [[1]])


@pytest.mark.skipif(shutil.which("xelatex") is None, reason="needs XeLaTeX")
def test_latex_table_with_long_headers_and_brackets_compiles(tmp_path):
    tex = report.table_latex(["regions in [-10,10]²", "R (all vertices in [-R,R]²)", "seed"],
                             [["[-1, 1]", "0.997 ± 0.002", "0"]])
    assert r"\begin{tabular}[b]" in tex  # long headers are broken over lines
    doc = tmp_path / "t.tex"
    # DejaVu as the build loads it: matplotlib's copy in .venv, linked beside the document
    export.link_fonts(tmp_path)
    doc.write_text("\\documentclass{article}\\usepackage{fontspec}" + export.dejavu_fonts(main=1) +
                   "\\usepackage{booktabs,adjustbox}\\begin{document}" + tex + "\\end{document}\n")
    result = subprocess.run(["xelatex", "-interaction=nonstopmode", "-halt-on-error", doc.name],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:]
    text = subprocess.run(["pdftotext", "t.pdf", "-"], cwd=tmp_path, capture_output=True, text=True).stdout
    assert "[-10,10]²" in text and "0.997 ± 0.002" in text
