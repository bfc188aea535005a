"""./export.sh end to end, in a copy of the repository: the PDF, its first page, its glyphs,
its structure, and what happens when a cell fails."""

import hashlib
import os
import re
import shutil
import signal
import subprocess
import time

import nbformat
import psutil
import pytest

from conftest import REPO, copy_of_repo, require_set_up_venv, run_export
from sheet05 import export


def poppler(tool):
    """A poppler tool (pdftotext, pdfinfo): needed by the tests only, not by ./export.sh."""
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is missing: the PDF tests read the PDF with poppler. Install it once "
                    "(Debian/Ubuntu/WSL: sudo apt-get install poppler-utils; Fedora: sudo dnf install poppler-utils; "
                    "Arch: sudo pacman -S poppler; macOS: brew install poppler)")
    return tool


def pdftotext(pdf, *args):
    return subprocess.run([poppler("pdftotext"), "-layout", *args, str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout


def page_count(pdf):
    info = subprocess.run([poppler("pdfinfo"), str(pdf)], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"Pages:\s+(\d+)", info).group(1)), re.search(r"Page size:\s+(.*)", info).group(1)


@pytest.mark.slow
def test_export_builds_the_submission(exported):
    repo, result = exported
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    pdf = repo / "submission.pdf"
    assert pdf.is_file()
    assert not list(repo.glob("kernel-ipc*")), "the kernel's socket files were left in the repository"
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
    for heading in ["Part I: Theory", "Part II: Notebook", "Part III: Appendix", "sheet05/data.py",
                    "sheet05/regions.py", "Exercise 1", "Exercise 3", "Exercise 5",
                    "1 The logistic sigmoid", "2 Logistic regression", "3 Log-sum-exp", "4 Linear regions",
                    "5 Number of linear regions"]:
        assert heading in text, heading
    # figure text: the regularisation in the titles of the score histograms
    for title in ["cities, C=∞", "neg_sp_en_trans, C=1"]:
        assert title in text, title
    for label in ["1(a)", "1(b)", "1(c)", "2(a)", "2(b)", "2(c)", "3(a)", "3(b)", "3(c)", "3(d)",
                  "3(e)", "4(a)", "4(b)", "4(c)", "4(d)"]:
        assert label in first, f"{label} missing from the contents on page 1"
        assert text.count(label) >= 2, label  # in the contents and in the body


@pytest.mark.slow
def test_failing_cell_fails_the_export_and_keeps_the_old_pdf(exported, tmp_path):
    exported_repo, result = exported
    assert result.returncode == 0
    # a copy of its own, so that the failed run does not overwrite the build the notebook
    # tests read; it starts with the good PDF of the exported copy
    repo = copy_of_repo(tmp_path / "repo")
    (repo / "data" / "lie_detection").symlink_to((exported_repo / "data" / "lie_detection").resolve())
    pdf = repo / "submission.pdf"
    pdf.write_bytes((exported_repo / "submission.pdf").read_bytes())
    before = hashlib.sha256(pdf.read_bytes()).hexdigest()

    nb_path = repo / "exercise_sheet.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    bad = nbformat.v4.new_code_cell("raise RuntimeError('deliberately broken cell')")
    nb.cells.insert(2, bad)  # right after the setup cell, so it fails within seconds
    nbformat.write(nb, nb_path)
    failed = run_export(repo, "--authors", "Ada Lovelace", "Alan Turing")
    assert failed.returncode != 0
    assert "cell 3" in failed.stderr and "deliberately broken cell" in failed.stderr
    assert "Exercise sheet 5: notebook part" in failed.stderr  # the heading above the cell
    assert hashlib.sha256(pdf.read_bytes()).hexdigest() == before


@pytest.mark.parametrize("moment", ["[3/7]", "[4/7]"])
def test_ctrl_c_says_in_one_line_what_was_kept(tmp_path, course_data, moment):
    """Ctrl+C (SIGINT to the whole process group, as a terminal sends it) during the set-up or
    while a cell runs: one line says what was kept, instead of the tracebacks of the kernel
    and of nbclient; the old PDF stays, and no kernel is left running."""
    require_set_up_venv()
    repo = copy_of_repo(tmp_path / "repo")
    (repo / "data" / "lie_detection").symlink_to(course_data)
    (repo / "submission.pdf").write_bytes(b"%PDF-1.5 the last good submission\n")
    marker = f"sheet05-sleeping-cell-{tmp_path.name}"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        f"import time\nprint('{marker}', flush=True)\ntime.sleep(120)")]), repo / "exercise_sheet.ipynb")
    if moment == "[3/7]":  # the data step, as a child process: slowed down by a sleeping python
        (repo / "sheet05" / "data.py").write_text("import time\ntime.sleep(120)\n")
    child = subprocess.Popen(["./export.sh", "--authors", "Ada Lovelace", "Alan Turing", "--rerun"], cwd=repo,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    out = ""
    for line in child.stdout:  # until the step has begun
        out += line
        if line.startswith(moment):
            break
    time.sleep(3)  # the kernel has started and runs the cell (or the data step sleeps)
    os.killpg(child.pid, signal.SIGINT)
    rest, err = child.communicate(timeout=60)
    assert child.returncode == 130, out + rest + err
    assert [line for line in err.splitlines() if line.strip()] == [
        "Interrupted. submission.pdf was left as it was (nothing was replaced). What earlier steps completed is "
        "kept (.venv, the course data, the build cache); ./export.sh goes on from there."], err
    assert (repo / "submission.pdf").read_bytes() == b"%PDF-1.5 the last good submission\n"
    assert not (repo / "build" / "exercise_sheet.executed.ipynb").exists()
    time.sleep(1)
    # the kernel (its connection file lies under the copy) and the data step (it runs in it)
    left = [p.info for p in psutil.process_iter(["pid", "cmdline", "cwd"])
            if tmp_path.name in " ".join(p.info["cmdline"] or []) + (p.info["cwd"] or "")]
    assert left == [], left


@pytest.mark.slow
def test_theory_only_change_reuses_the_executed_notebook(exported, tmp_path):
    """The fast edit loop: with the build folder of a finished export, a theory edit rebuilds the
    PDF without executing the notebook, and the PDF shows the edit."""
    exported_repo, result = exported
    assert result.returncode == 0
    repo = copy_of_repo(tmp_path / "repo")
    (repo / "data" / "lie_detection").symlink_to((exported_repo / "data" / "lie_detection").resolve())
    shutil.copytree(exported_repo / "build", repo / "build", symlinks=True)
    tex = repo / "theory" / "theory.tex"
    tex.write_text(tex.read_text(encoding="utf-8").replace(
        "\\end{document}", "Edited after the first build.\n\\end{document}"), encoding="utf-8")
    again = run_export(repo, "--authors", "Ada Lovelace", "Alan Turing")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "reusing build/exercise_sheet.executed.ipynb" in again.stdout
    assert "Edited after the first build." in pdftotext(repo / "submission.pdf")
    rerun = run_export(repo, "--authors", "Ada Lovelace", "Alan Turing", "--rerun")
    assert rerun.returncode == 0 and "reusing" not in rerun.stdout


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
    assert "data" in modules and "report" in modules and "regions" in modules and "lse" in modules
    assert "export" not in modules  # plumbing the results do not depend on


def test_helper_modules_found_in_every_import_form():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("from sheet05 import regions as rg, data\nimport sheet05.lse"),
        nbformat.v4.new_code_cell("from sheet05.report import show_table\nfrom sheet05 import nonexistent"),
    ])
    assert export.imported_helper_modules(nb) == ["lse", "regions", "data", "report"]


def test_bad_latex_is_reported_with_its_error(tmp_path):
    tex = tmp_path / "broken.tex"
    tex.write_text("\\documentclass{article}\\begin{document}\\undefinedmacro\\end{document}\n")
    with pytest.raises(export.BuildError, match="Undefined control sequence"):
        export.run_latexmk(tex)


# Excerpts of real XeLaTeX logs (-file-line-error, as run_latexmk runs it) from TeX Live 2020
# (Debian 11, as Ubuntu 22.04), 2022 (Debian 12), 2024 (Debian 13) and 2026 (Debian testing).
# Since expl3 2025-01 a package error's text starts on the line after "Package fontspec Error:".
LATEX_LOGS = REPO / "tests" / "latex_logs"
LOG_YEARS = ("2020", "2022", "2024", "2026")
# per document: what the reported error must say, and where
LOG_REASONS = {
    "fontspec": (['The font "DejaVu Serif" cannot', "be found"], "fontspec.tex:4"),
    "undefined": (["Undefined control sequence", "\\undefinedmacro"], "undefined.tex:3"),
    "missingsty": (["File `nosuchpackage.sty' not found"], "missingsty.tex:3"),
}


def one_line(text):
    return " ".join(text.replace("(fontspec)", " ").split())


@pytest.mark.parametrize("year", LOG_YEARS)
@pytest.mark.parametrize("document", sorted(LOG_REASONS))
def test_latex_error_is_reported_with_its_reason_and_place(year, document):
    log = (LATEX_LOGS / f"texlive{year}-{document}.log").read_text(encoding="utf-8")
    errors = export.latex_errors(log)
    assert errors, log
    reported = one_line("\n".join(errors))
    phrases, place = LOG_REASONS[document]
    for phrase in phrases:
        assert one_line(phrase) in reported, (phrase, errors)
    assert place in reported, errors
    assert "For immediate help" not in reported and "Here is how much" not in reported


def test_log_without_errors_gives_none():
    assert export.latex_errors("This is XeTeX, Version 3.141592653\nOutput written on x.xdv (1 page).\n") == []


def test_fontspec_error_shows_the_font_here(tmp_path):
    """The same on this machine's TeX Live, through run_latexmk: the font's name and the line."""
    tex = tmp_path / "byname.tex"
    tex.write_text("\\documentclass{article}\n\\usepackage{fontspec}\n\\setmainfont{No Such Font Family}\n"
                   "\\begin{document}x\\end{document}\n")
    with pytest.raises(export.BuildError) as err:
        export.run_latexmk(tex)
    message = one_line(str(err.value))
    assert 'The font "No Such Font Family" cannot be found' in message, message
    assert "byname.tex:" in message


def test_split_stream_outputs_are_typeset_as_one():
    """A cell's printed text, split into chunks by timing, gives the same LaTeX as one chunk."""
    def notebook(chunks):
        outputs = [nbformat.v4.new_output("stream", name="stdout", text=t) for t in chunks]
        return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('a'); print('b')", outputs=outputs)])

    merged, _ = export.notebook_latex(notebook(["first line\nsecond line\n"]))
    split, _ = export.notebook_latex(notebook(["first line\n", "second line\n"]))
    assert split == merged
    document = merged[merged.index("\\begin{document}"):]
    assert document.count("\\begin{Verbatim}") == 2  # the code and one block of output


def test_first_run_notice_of_matplotlib_is_left_out():
    """matplotlib's font-cache notice, printed by a machine's first run only, is not typeset;
    the cell's other stderr text is, and the executed notebook itself is not changed."""
    notice = "Matplotlib is building the font cache; this may take a moment.\n"
    cells = [nbformat.v4.new_code_cell("import matplotlib.pyplot as plt", outputs=[
                 nbformat.v4.new_output("stream", name="stderr", text=notice)]),
             nbformat.v4.new_code_cell("print(1)", outputs=[
                 nbformat.v4.new_output("stream", name="stderr", text=notice + "a real warning\n"),
                 nbformat.v4.new_output("stream", name="stdout", text="1\n")])]
    nb = nbformat.v4.new_notebook(cells=cells)
    body, _ = export.notebook_latex(nb)
    assert "font cache" not in body and "a real warning" in body
    assert nb.cells[0].outputs[0].text == notice
    clean = export.without_one_time_notices(nb)
    assert clean.cells[0].outputs == [] and [o.name for o in clean.cells[1].outputs] == ["stderr", "stdout"]


def test_missing_glyph_is_an_error(tmp_path):
    tex = tmp_path / "glyph.tex"
    tex.write_text("\\documentclass{article}\\usepackage{fontspec}\\setmainfont{lmroman10-regular.otf}"
                   "\\begin{document}λ\\end{document}\n")
    with pytest.raises(export.BuildError, match="glyphs missing"):
        export.run_latexmk(tex)


def test_scanned_notes_follow_the_theory_in_file_name_order(tmp_path, monkeypatch):
    """PDFs dropped into theory/ are merged after the typeset theory, sorted by file name."""
    theory = tmp_path / "theory"
    theory.mkdir()
    (theory / "theory.tex").write_text(
        "\\documentclass{article}\\usepackage{hyperref}\\begin{document}"
        "\\section{Exercise 1: typeset}Typeset proof.\\end{document}\n")
    for name, words in [("2-later.pdf", "Second scan"), ("1-first.pdf", "First scan")]:
        src = tmp_path / (name[:-4] + ".tex")
        src.write_text(f"\\documentclass{{article}}\\begin{{document}}{words}\\end{{document}}\n")
        (theory / name).write_bytes(export.run_latexmk(src).read_bytes())
    monkeypatch.setattr(export, "THEORY_DIR", theory)
    assert [p.name for p in export.scanned_notes()] == ["1-first.pdf", "2-later.pdf"]

    parts = [export.Part("Part I: Theory", export.theory_pdf(tmp_path / "build_theory"))]
    parts += [export.Part(f"Handwritten notes: {p.name}", p) for p in export.scanned_notes()]
    for part in parts:
        part.entries = export.outline_entries(part.pdf)
    pdf = export.assemble(parts, ["Ada Lovelace", "Alan Turing"], tmp_path / "assembled")
    pages = [pdftotext(pdf, "-f", str(n), "-l", str(n)) for n in range(1, page_count(pdf)[0] + 1)]
    assert "Ada Lovelace" in pages[0] and "Handwritten notes: 1-first.pdf" in pages[0]
    assert "Typeset proof" in pages[1] and "First scan" in pages[2] and "Second scan" in pages[3]
