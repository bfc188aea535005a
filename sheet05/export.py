"""Build the single submission PDF: title page and contents, theory, notebook, appendix.

Called by ``./export.sh`` after it has set up the virtual environment, the TeX toolchain
and the data. Steps (each printed with its duration):

1. execute ``exercise_sheet.ipynb`` top to bottom (a failing cell stops the build and is
   named: number, heading above it, first line);
2. convert the executed notebook to LaTeX with the template in ``templates/`` (DejaVu
   fonts, so Greek letters and maths symbols survive; A4) and compile it with latexmk;
3. compile ``theory/theory.tex``; scanned notes ``theory/*.pdf`` follow it, in file-name
   order;
4. typeset the source of every helper module the notebook imports (appendix);
5. assemble everything with pdfpages into one document with a title page (both names),
   a table of contents built from the parts' own bookmarks, continuous page numbers and
   PDF bookmarks, and move it to ``submission.pdf`` only if every step succeeded.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sheet05.report import latex_escape

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = Path(__file__).resolve().parent / "templates"
NOTEBOOK = REPO_ROOT / "exercise_sheet.ipynb"
THEORY_DIR = REPO_ROOT / "theory"
AUTHORS_FILE = REPO_ROOT / "authors.txt"
BUILD = REPO_ROOT / "build"
OUTPUT = REPO_ROOT / "submission.pdf"
PLACEHOLDER_AUTHORS = ["First Member", "Second Member"]

COURSE = "Machine Learning and Physics (Heidelberg University, winter term 2025/26)"
SHEET = "Exercise sheet 5: logistic sigmoid, lie detection, log-sum-exp, linear regions"


# Fonts by file name, not family name: XeTeX finds a family name only through the system
# (fontconfig, CoreText), which does not see the fonts in MacTeX's or TeX Live's own tree.
_DEJAVU = {
    "main": ("setmainfont", "DejaVuSerif", "Italic"),
    "sans": ("setsansfont", "DejaVuSans", "Oblique"),
    "mono": ("setmonofont", "DejaVuSansMono", "Oblique"),
}


def dejavu_fonts(**scales: float) -> str:
    """fontspec lines loading the DejaVu files, e.g. dejavu_fonts(main=0.95, mono=0.85)."""
    lines = []
    for kind, scale in scales.items():
        command, name, slant = _DEJAVU[kind]
        lines.append(f"\\{command}{{{name}}}[Extension=.ttf, UprightFont=*, BoldFont=*-Bold, "
                     f"ItalicFont=*-{slant}, BoldItalicFont=*-Bold{slant}, Scale={scale}]\n")
    return "".join(lines)


class BuildError(RuntimeError):
    """A build step failed; the message says which and why."""


# --------------------------------------------------------------------------- helpers


def step(number: int, total: int, title: str):
    """Context manager that prints a step's title and, on success, its duration."""

    class _Step:
        def __enter__(self):
            print(f"[{number}/{total}] {title} ...", flush=True)
            self.start = time.perf_counter()

        def __exit__(self, exc_type, exc, tb):
            if exc_type is None:
                print(f"      done in {time.perf_counter() - self.start:.1f} s", flush=True)

    return _Step()


def read_authors(path: Path = AUTHORS_FILE) -> list[str]:
    """The group members' names: one per non-empty, non-comment line of authors.txt."""
    if not path.is_file():
        raise BuildError(f"{path} is missing: put one name per line, or pass --authors A B")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def run_latexmk(tex: Path, pretex: str = "") -> Path:
    """Compile `tex` with XeLaTeX in its own folder; on failure show the first TeX error."""
    cmd = ["latexmk", "-xelatex", "-interaction=nonstopmode", "-halt-on-error", "-file-line-error"]
    if pretex:
        cmd.append(f"-usepretex={pretex}")
    result = subprocess.run(cmd + [tex.name], cwd=tex.parent, capture_output=True, text=True)
    log = tex.with_suffix(".log")
    if result.returncode != 0:
        text = log.read_text(errors="replace") if log.exists() else result.stdout + result.stderr
        errors = [line for line in text.splitlines() if line.startswith("!") or ":error:" in line
                  or re.match(r"^\S+\.tex:\d+:", line)]
        detail = "\n    ".join(errors[:8]) or "\n    ".join(text.splitlines()[-20:])
        raise BuildError(f"LaTeX failed on {tex} (log: {log}):\n    {detail}")
    missing = sorted(set(re.findall(r"Missing character: There is no (.+?) in font", log.read_text(errors="replace"))))
    if missing:
        raise BuildError(f"{tex}: glyphs missing from the fonts (would silently vanish): {missing}")
    return tex.with_suffix(".pdf")


# --------------------------------------------------------------------------- notebook


class NotebookFailed(BuildError):
    pass


def _heading_above(cells, index: int) -> str:
    for cell in reversed(cells[:index]):
        if cell.cell_type == "markdown":
            for line in reversed(cell.source.splitlines()):  # the last heading is the nearest
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return "(no heading)"


def execute_notebook(src: Path = NOTEBOOK, dst: Path | None = None, timeout: int = 600,
                     cwd: Path = REPO_ROOT):
    """Run every cell of `src` in a fresh kernel, with `cwd` (the repository root) as working dir.

    Returns the executed notebook (also written to `dst`). A failing cell raises
    NotebookFailed naming the cell number, the heading above it and its first line.
    """
    import nbformat
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(src, as_version=4)
    failed: dict = {}

    def remember(cell, cell_index, execute_reply, **_):
        failed.update(cell=cell, index=cell_index)

    # IPC (local socket files, in a private temporary folder removed afterwards) instead of
    # TCP: nothing listens on the network, and the kernel does not warn about unencrypted TCP.
    sockets = tempfile.mkdtemp(prefix="sheet05-kernel-")
    km = KernelManager(kernel_name="python3", transport="ipc", ip=os.path.join(sockets, "ipc"))
    client = NotebookClient(
        nb, km=km, timeout=timeout, kernel_name="python3", on_cell_error=remember,
        resources={"metadata": {"path": str(cwd)}},
    )
    # SHEET05_EXPORT=1 tells the notebook to render its figures as (vector) PDF only.
    env = {**os.environ, "SHEET05_EXPORT": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    try:
        client.execute(env=env)
    except CellExecutionError as err:
        cell, index = failed.get("cell"), failed.get("index", -1)
        first = cell.source.strip().splitlines()[0] if cell is not None and cell.source.strip() else ""
        errors = [o for o in (cell.outputs if cell is not None else []) if o.get("output_type") == "error"]
        reason = f"{errors[0]['ename']}: {errors[0]['evalue']}" if errors else str(err).splitlines()[-1]
        raise NotebookFailed(
            f"{src.name}: cell {index + 1} (under '{_heading_above(nb.cells, index)}', "
            f"starting '{first[:70]}') failed with {reason}"
        ) from None
    finally:
        if km.has_kernel:
            km.shutdown_kernel(now=True)
        shutil.rmtree(sockets, ignore_errors=True)
        if dst is not None:
            dst.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, dst)
    return nb


def notebook_pdf(nb, workdir: Path) -> Path:
    """Convert an executed notebook to LaTeX with the DejaVu/A4 template and compile it."""
    from nbconvert import LatexExporter

    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    exporter = LatexExporter(template_name="submission_nb", extra_template_basedirs=[str(TEMPLATES)])
    body, resources = exporter.from_notebook_node(nb, resources={"output_files_dir": "figures"})
    (workdir / "notebook.tex").write_text(body, encoding="utf-8")
    for name, data in resources.get("outputs", {}).items():
        (workdir / name).parent.mkdir(parents=True, exist_ok=True)
        (workdir / name).write_bytes(data)
    return run_latexmk(workdir / "notebook.tex", pretex=r"\def\submissionbuild{}")


# --------------------------------------------------------------------------- theory, appendix


def theory_pdf(workdir: Path) -> Path:
    shutil.rmtree(workdir, ignore_errors=True)
    shutil.copytree(THEORY_DIR, workdir, ignore=shutil.ignore_patterns("*.pdf", "*.aux", "*.log"))
    return run_latexmk(workdir / "theory.tex", pretex=r"\def\submissionbuild{}")


def scanned_notes() -> list[Path]:
    """Handwritten notes: every PDF in theory/ except build output, in file-name order."""
    return sorted(p for p in THEORY_DIR.glob("*.pdf") if p.name != "theory.pdf")


def imported_helper_modules(nb) -> list[str]:
    """Names of the sheet05 modules that the notebook's code cells import."""
    found = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            names = re.findall(r"(?:from|import)\s+sheet05\.(\w+)", cell.source)
            for group in re.findall(r"from\s+sheet05\s+import\s+([\w\s,]+)", cell.source):
                names += [item.split()[0] for item in group.split(",") if item.strip()]
            for name in names:
                if name not in found and (REPO_ROOT / "sheet05" / f"{name}.py").is_file():
                    found.append(name)
    return found


def appendix_pdf(modules: list[str], workdir: Path) -> Path | None:
    if not modules:
        return None
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    sections = []
    for name in modules:
        source = REPO_ROOT / "sheet05" / f"{name}.py"
        shutil.copy(source, workdir / f"{name}.py")
        sections.append(
            f"\\section{{sheet05/{name}.py}}\n"
            f"\\VerbatimInput[breaklines,breakanywhere,numbers=left,numbersep=4pt,"
            f"fontsize=\\footnotesize]{{{name}.py}}\n"
        )
    (workdir / "appendix.tex").write_text(
        "\\documentclass[10pt,a4paper]{article}\n"
        "\\usepackage{fontspec}\n" + dejavu_fonts(main=0.95, mono=0.85) +
        "\\usepackage[a4paper,margin=2cm]{geometry}\n\\usepackage{fvextra}\n"
        "\\usepackage{hyperref}\\setcounter{secnumdepth}{0}\n"
        "\\begin{document}\n\\ifdefined\\submissionbuild\\pagestyle{empty}\\fi\n"
        "\\noindent The helper package \\texttt{sheet05} holds the plumbing that the notebook "
        "imports. Its full source is printed here because results in the notebook depend on it.\n"
        + "".join(sections) + "\\end{document}\n",
        encoding="utf-8",
    )
    return run_latexmk(workdir / "appendix.tex", pretex=r"\def\submissionbuild{}")


# --------------------------------------------------------------------------- assembly


@dataclass
class Part:
    title: str
    pdf: Path
    entries: list[tuple[int, str, int]] = field(default_factory=list)  # (level, title, page)


def outline_entries(pdf: Path, max_level: int = 1) -> list[tuple[int, str, int]]:
    """The PDF's bookmarks as (level, title, 1-based page), down to `max_level`."""
    from pypdf import PdfReader

    reader = PdfReader(pdf)
    entries = []

    def walk(items, level):
        for item in items:
            if isinstance(item, list):
                if level + 1 <= max_level:
                    walk(item, level + 1)
            else:
                entries.append((level, str(item.title), reader.get_destination_page_number(item) + 1))

    walk(reader.outline, 0)
    return entries


def _includepdf(part: Part, label: str, filename: str) -> str:
    """The pdfpages line for one part, whose PDF lies next to the document as `filename`.

    A plain relative name: an absolute path would go into LaTeX as it is, and a repository
    path with #, % or ~ (special to TeX) would break the merge.
    """
    levels = ["subsection", "subsubsection", "paragraph"]
    toc = [f"1,section,1,{{{latex_escape(part.title)}}},{label}"]
    for i, (level, title, page) in enumerate(part.entries):
        toc.append(f"{page},{levels[level]},{level + 2},{{{latex_escape(title)}}},{label}-{i}")
    return (
        f"\\includepdf[pages=-,pagecommand={{\\thispagestyle{{plain}}}},"
        f"addtotoc={{{','.join(toc)}}}]{{{filename}}}\n"
    )


def assemble(parts: list[Part], authors: list[str], workdir: Path) -> Path:
    """One LaTeX document: title page with names and contents, then every part's pages."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    names = r" \\[0.4em] ".join(latex_escape(a) for a in authors)
    for i, part in enumerate(parts):
        shutil.copyfile(part.pdf, workdir / f"part{i}.pdf")
    includes = "".join(_includepdf(p, f"part{i}", f"part{i}.pdf") for i, p in enumerate(parts))
    (workdir / "submission.tex").write_text(
        rf"""\documentclass[11pt,a4paper]{{article}}
\usepackage{{fontspec}}
{dejavu_fonts(main=0.95, sans=1)}\usepackage[a4paper,margin=2.3cm]{{geometry}}
\usepackage{{pdfpages}}
\usepackage[hidelinks,bookmarksopen=true,bookmarksopenlevel=1,bookmarksnumbered=false]{{hyperref}}
\setcounter{{tocdepth}}{{3}}
\setcounter{{secnumdepth}}{{-10}}
\hypersetup{{pdftitle={{{latex_escape(SHEET)}}},pdfauthor={{{latex_escape(', '.join(authors))}}}}}
\begin{{document}}
\thispagestyle{{empty}}
\begin{{center}}
{{\sffamily\large {latex_escape(COURSE)}\par}}
\vspace{{1.2em}}
{{\sffamily\bfseries\LARGE {latex_escape(SHEET)}\par}}
\vspace{{1.6em}}
{{\large Submitted by\\[0.6em] {names}\par}}
\vspace{{1em}}
{{\small Built on {time.strftime('%Y-%m-%d')}\par}}
\end{{center}}
\vspace{{1em}}
\noindent\small The theory (exercises 1, 3(a), 3(d), 3(e) and 5) comes first, then the executed
notebook (exercises 2, 3(a)--(c), 4 and the numerical check of 5), then the source of the
helper code the notebook uses. Every exercise and sub-question is listed below with its page.
\renewcommand{{\contentsname}}{{\normalsize Contents}}
{{\small\tableofcontents}}
\clearpage
{includes}\end{{document}}
""",
        encoding="utf-8",
    )
    return run_latexmk(workdir / "submission.tex")


def replace_atomically(built: Path, target: Path = OUTPUT) -> None:
    """Copy next to `target`, then rename: readers see the old or the new PDF, never half."""
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.copyfile(built, tmp)
    os.replace(tmp, target)


# --------------------------------------------------------------------------- main


def _theory_and_appendix(notebook: Path):
    import nbformat

    theory = Part("Part I: Theory (exercises 1, 3(a), 3(d), 3(e) and 5)", theory_pdf(BUILD / "theory"))
    notes = [Part(f"Handwritten notes: {p.name}", p) for p in scanned_notes()]
    modules = imported_helper_modules(nbformat.read(notebook, as_version=4))
    pdf = appendix_pdf(modules, BUILD / "appendix")
    appendix = Part("Part III: Appendix, source of the helper package", pdf) if pdf else None
    return theory, notes, appendix


def build(authors: list[str], notebook: Path = NOTEBOOK, output: Path = OUTPUT,
          first_step: int = 4, total: int = 7) -> Path:
    if len(authors) != 2 or not all(a.strip() for a in authors):
        raise BuildError(f"need exactly two non-empty names (a group of two), got {authors!r}")
    n = first_step
    # The theory and the appendix do not depend on the notebook's outputs: compile them on
    # the second core while the notebook runs (its BLAS is limited to one thread).
    with ThreadPoolExecutor(max_workers=1) as pool:
        side = pool.submit(_theory_and_appendix, notebook)
        with step(n, total, f"Executing {notebook.name} top to bottom"):
            nb = execute_notebook(notebook, BUILD / "exercise_sheet.executed.ipynb")
        with step(n + 1, total, "Converting the notebook to PDF (nbconvert + XeLaTeX)"):
            notebook_part = Part("Part II: Notebook (exercises 2, 3, 4 and 5, practical)",
                                 notebook_pdf(nb, BUILD / "notebook"))
        with step(n + 2, total, "Theory (latexmk, XeLaTeX) and appendix, compiled alongside step 4"):
            theory, notes, appendix = side.result()
    parts = [theory, *notes, notebook_part] + ([appendix] if appendix else [])
    with step(n + 3, total, "Assembling the title page, contents and all parts"):
        for part in parts:
            part.entries = outline_entries(part.pdf)
        pdf = assemble(parts, authors, BUILD / "submission")
        replace_atomically(pdf, output)
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--authors", nargs=2, metavar=("FIRST", "SECOND"),
                        help=f"the two group members (default: the names in {AUTHORS_FILE.name})")
    parser.add_argument("--first-step", type=int, default=4)
    parser.add_argument("--total-steps", type=int, default=7)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        authors = args.authors or read_authors()
        if authors == PLACEHOLDER_AUTHORS:
            print(f"warning: {AUTHORS_FILE.name} still holds the placeholder names; set the two "
                  "names there or pass --authors", file=sys.stderr)
        out = build(authors, first_step=args.first_step, total=args.total_steps)
    except BuildError as err:
        print(f"\nexport failed: {err}\n{OUTPUT.name} was left as it was.", file=sys.stderr)
        return 1
    print(f"wrote {out} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
