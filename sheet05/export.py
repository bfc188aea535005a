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
5. typeset the title page (both names), the answers at a glance and a table of contents
   built from the parts' own bookmarks, merge it with the parts' pages (pypdf: continuous
   page numbers, PDF bookmarks, links), and move it to ``submission.pdf`` only if every
   step succeeded.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sheet05.authors import AuthorsError, check_names, left_as_it_was
from sheet05.report import latex_escape

# nbformat validates notebooks with jsonschema, which imports rfc3987_syntax when it is
# installed (Jupyter brings it); that module builds 38 parsers on import, about 2 s of CPU in
# every export. nbformat's schema uses none of its formats: jsonschema skips them without it.
sys.modules.setdefault("rfc3987_syntax", None)

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = Path(__file__).resolve().parent / "templates"
NOTEBOOK = REPO_ROOT / "exercise_sheet.ipynb"
THEORY_DIR = REPO_ROOT / "theory"
AUTHORS_FILE = REPO_ROOT / "authors.txt"
BUILD = REPO_ROOT / "build"
OUTPUT = REPO_ROOT / "submission.pdf"
DRAFT_OUTPUT = REPO_ROOT / "draft.pdf"  # --draft: never replaces submission.pdf
LATEX_OUTPUT = {".pdf", ".aux", ".log", ".fls", ".fdb_latexmk", ".out", ".toc", ".xdv", ".gz"}
EXPORT_CODE = Path(__file__).resolve()  # the build's own code is part of every PDF's cache key

COURSE = "Machine Learning and Physics (Heidelberg University, winter term 2025/26)"
SHEET = "Exercise sheet 5: logistic sigmoid, lie detection, log-sum-exp, linear regions"


# Fonts by file name, not family name: XeTeX finds a family name only through the system
# (fontconfig, CoreText), which does not see the fonts in MacTeX's or TeX Live's own tree.
# The DejaVu files are matplotlib's copies in .venv (every installation has them, whatever the
# OS or TeX distribution), reached through a link "fonts" beside each document (see link_fonts).
FONTS_LINK = "fonts"
_DEJAVU = {
    "main": ("setmainfont", "DejaVuSerif", "Italic"),
    "sans": ("setsansfont", "DejaVuSans", "Oblique"),
    "mono": ("setmonofont", "DejaVuSansMono", "Oblique"),
}
DEJAVU_FILES = tuple(f"{name}{face}.ttf" for _, name, slant in _DEJAVU.values()
                     for face in ("", "-Bold", f"-{slant}", f"-Bold{slant}"))


def dejavu_fonts(**scales: float) -> str:
    """fontspec lines loading the DejaVu files, e.g. dejavu_fonts(main=0.95, mono=0.85)."""
    lines = []
    for kind, scale in scales.items():
        command, name, slant = _DEJAVU[kind]
        lines.append(f"\\{command}{{{name}}}[Path={FONTS_LINK}/, Extension=.ttf, UprightFont=*, BoldFont=*-Bold, "
                     f"ItalicFont=*-{slant}, BoldItalicFont=*-Bold{slant}, Scale={scale}]\n")
    return "".join(lines)


def dejavu_folder() -> Path:
    """The folder of the DejaVu TTFs that matplotlib ships (mpl-data/fonts/ttf), found without
    importing matplotlib."""
    spec = importlib.util.find_spec("matplotlib")
    folder = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" if spec and spec.origin else None
    missing = [n for n in DEJAVU_FILES if folder is None or not (folder / n).is_file()]
    if missing:
        raise BuildError(f"the DejaVu fonts that matplotlib ships are missing ({', '.join(missing)} in "
                         f"{folder or 'matplotlib, which is not installed'}): .venv is damaged; "
                         "remove it (rm -rf .venv) and run ./export.sh again")
    return folder


def link_fonts(workdir: Path) -> None:
    """Make workdir/fonts the DejaVu folder, so that fontspec's Path= is a short relative path
    whatever characters (space, #, %, ~) the repository's own path holds."""
    link = workdir / FONTS_LINK
    target = dejavu_folder()
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.is_dir():
        shutil.rmtree(link)
    try:
        link.symlink_to(target, target_is_directory=True)
    except OSError:  # a file system without symbolic links: copy the files
        link.mkdir()
        for name in DEJAVU_FILES:
            shutil.copyfile(target / name, link / name)


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
    from sheet05.authors import read_authors as read

    try:
        return read(str(path))
    except AuthorsError as err:
        raise BuildError(str(err)) from None


# The start of a TeX error in the log: "! message" or, with -file-line-error, "file:line: message".
_TEX_ERROR = re.compile(r"^(?:! |(?:[A-Za-z]:)?[^:\s](?:[^:]|:[^\d\s])*:\d+: )")
_TEX_CONTEXT = re.compile(r"^l\.\d+ ")  # "l.12 <text up to the error>": where it stopped
_TEX_LOG_WIDTH = 79  # TeX Live's max_print_line: longer log lines are broken at this width


def latex_errors(log_text: str, max_errors: int = 3, max_lines: int = 12) -> list[str]:
    """The errors in a TeX log, each with its reason and where it happened.

    An error is its first line ("! ..." or "file:line: ..."), the lines that continue it up
    to the next blank line (a package error's text continues on "(fontspec)  ..." lines, and
    since expl3 2025-01 it starts there: the first line ends at "Error:"), and TeX's context
    line "l.<line> ..." with the line after it, which show where in the file it stopped.
    """
    lines = log_text.splitlines()
    errors = []
    i = 0
    while i < len(lines) and len(errors) < max_errors:
        if not _TEX_ERROR.match(lines[i]):
            i += 1
            continue
        block = [lines[i]]
        j = i + 1
        while j < len(lines) and lines[j].strip() and not _TEX_ERROR.match(lines[j]) \
                and not _TEX_CONTEXT.match(lines[j]) and len(block) < max_lines:
            if len(lines[j - 1]) == _TEX_LOG_WIDTH:  # TeX broke a long line here: undo it
                block[-1] += lines[j]
            else:
                block.append(lines[j])
            j += 1
        block = [line.rstrip() for line in block]
        # TeX's help text may follow after a blank line; then the context line, if any, and
        # the line after it (the rest of the source line)
        for k in range(j, min(j + 12, len(lines))):
            if _TEX_ERROR.match(lines[k]):
                break
            if _TEX_CONTEXT.match(lines[k]):
                block.append(lines[k].rstrip())
                if k + 1 < len(lines) and lines[k + 1].strip():
                    block.append(lines[k + 1].rstrip())
                j = k + 1
                break
        errors.append("\n".join(block))
        i = j
    return errors


def run_latexmk(tex: Path, pretex: str = "") -> Path:
    """Compile `tex` with XeLaTeX in its own folder; on failure show TeX's errors with their
    reasons (see latex_errors), or the end of the log if it has none."""
    link_fonts(tex.parent)
    cmd = ["latexmk", "-xelatex", "-interaction=nonstopmode", "-halt-on-error", "-file-line-error"]
    if pretex:
        cmd.append(f"-usepretex={pretex}")
    result = subprocess.run(cmd + [tex.name], cwd=tex.parent, capture_output=True, text=True)
    log = tex.with_suffix(".log")
    if result.returncode != 0:
        text = log.read_text(errors="replace") if log.exists() else ""
        errors = latex_errors(text)
        if errors:
            detail = "\n\n".join(errors)
        else:  # no TeX error in the log (or no log): latexmk or xdvipdfmx said why
            tail = (text.splitlines()[-15:] if text else []) + (result.stdout + result.stderr).splitlines()[-15:]
            detail = "\n".join(tail)
        raise BuildError(f"LaTeX failed on {tex} (log: {log}):\n    " + detail.replace("\n", "\n    "))
    missing = sorted(set(re.findall(r"Missing character: There is no (.+?) in font", log.read_text(errors="replace"))))
    if missing:
        raise BuildError(f"{tex}: glyphs missing from the fonts (would silently vanish): {missing}")
    return tex.with_suffix(".pdf")


# --------------------------------------------------------------------------- notebook


class NotebookFailed(BuildError):
    pass


def read_notebook(path: Path):
    """The notebook at `path`. If it cannot be read (an editor that stopped while saving, or a
    merge conflict between the two partners' commits left git's markers in it), a BuildError
    names the file, the line where its JSON breaks and the way back."""
    import nbformat

    try:
        text = path.read_text(encoding="utf-8")
        json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        where = (f"line {err.lineno}, column {err.colno} ({err.msg.removesuffix(' starting at').lower()})"
                 if isinstance(err, json.JSONDecodeError) else f"byte {err.start} (not UTF-8)")
        text = path.read_bytes().decode("utf-8", errors="replace")
        marker = re.search(r"^(<<<<<<<|=======$|>>>>>>>)", text, re.M)
        cause = (f"it holds git's merge-conflict markers (line {text.count(chr(10), 0, marker.start()) + 1}: "
                 f"'{marker.group(1)}'), from a merge of two versions" if marker else
                 "perhaps an editor stopped while saving it, or a merge went wrong")
        raise BuildError(
            f"{path.name} is not a readable notebook: its JSON breaks at {where}; {cause}.\n"
            f"  Back to the last committed version (your changes since then are lost; copy the file\n"
            f"  first to keep them):  git checkout -- {path.name}\n"
            f"  After a merge conflict, keep one side:  git checkout --ours -- {path.name}  (or --theirs),\n"
            f"  or merge the two versions cell by cell with nbdime (https://nbdime.readthedocs.io).") from None
    return nbformat.reads(text, as_version=4)


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
    from traitlets.config import Config
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = read_notebook(src)
    failed: dict = {}

    def remember(cell, cell_index, execute_reply, **_):
        failed.update(cell=cell, index=cell_index)

    # IPC (local socket files, in a private temporary folder removed afterwards) instead of
    # TCP: nothing listens on the network, and the kernel does not warn about unencrypted TCP.
    # nbclient makes the kernel manager (an asynchronous one, so that Ctrl+C is noticed while a
    # silent cell runs) and stops the kernel at once when the run ends or is interrupted.
    sockets = tempfile.mkdtemp(prefix="sheet05-kernel-")
    config = Config({"AsyncKernelManager": {"transport": "ipc", "ip": os.path.join(sockets, "ipc")}})
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", on_cell_error=remember, config=config,
        resources={"metadata": {"path": str(cwd)}}, shutdown_kernel="immediate",
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
        shutil.rmtree(sockets, ignore_errors=True)
        if dst is not None:
            dst.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, dst)
    return nb


# Printed to stderr by the first matplotlib import on a machine (or in a fresh home folder),
# while matplotlib builds its font cache: once per machine, so not part of the results.
_ONE_TIME_NOTICES = ("Matplotlib is building the font cache; this may take a moment.\n",)


def without_one_time_notices(nb):
    """A copy of `nb` without the notices that only a machine's first run prints (they would
    add lines, and move the page breaks, in a student's first PDF only)."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        outputs = []
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                text = "".join(output.get("text", ""))
                for notice in _ONE_TIME_NOTICES:
                    text = text.replace(notice, "")
                if not text:
                    continue
                output["text"] = text
            outputs.append(output)
        if "outputs" in cell:
            cell["outputs"] = outputs
    return nb


def notebook_latex(nb) -> tuple[str, dict]:
    """The notebook as LaTeX with the DejaVu/A4 template: (body, resources with the figures).

    A cell's consecutive stream outputs are merged first: the kernel splits printed text into
    chunks as timing has it, and chunks are typeset as separate blocks (each with its own
    spacing), so unmerged the page breaks would differ from run to run. Notices that only a
    machine's first run prints are left out (see without_one_time_notices)."""
    from nbconvert import LatexExporter
    from nbconvert.preprocessors import CoalesceStreamsPreprocessor

    exporter = LatexExporter(template_name="submission_nb", extra_template_basedirs=[str(TEMPLATES)])
    exporter.register_preprocessor(CoalesceStreamsPreprocessor(), enabled=True)
    return exporter.from_notebook_node(without_one_time_notices(nb), resources={"output_files_dir": "figures"})


def notebook_pdf(nb, workdir: Path) -> Path:
    """Convert an executed notebook to LaTeX (see notebook_latex) and compile it."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    body, resources = notebook_latex(nb)
    (workdir / "notebook.tex").write_text(body, encoding="utf-8")
    for name, data in resources.get("outputs", {}).items():
        (workdir / name).parent.mkdir(parents=True, exist_ok=True)
        (workdir / name).write_bytes(data)
    return run_latexmk(workdir / "notebook.tex", pretex=r"\def\submissionbuild{}")


# --------------------------------------------------------------------------- cache


def notebook_inputs(notebook: Path = NOTEBOOK, root: Path = REPO_ROOT) -> list[Path]:
    """The files the executed notebook depends on: the notebook, the sheet05 modules it imports
    (and the ones those import), requirements.txt and the data manifest."""
    package = root / "sheet05"
    todo = [name for cell in read_notebook(notebook).cells if cell.cell_type == "code"
            for name in helper_imports(cell.source, package)]
    modules = []
    while todo:
        name = todo.pop(0)
        if name not in modules:
            modules.append(name)
            todo += helper_imports((package / f"{name}.py").read_text(encoding="utf-8"), package)
    return [notebook, *(package / f"{m}.py" for m in sorted(modules)),
            root / "requirements.txt", root / "data" / "lie_detection.sha256"]


def content_key(paths: list[Path], *extra: str) -> str:
    """SHA-256 over the names and contents of `paths` and the strings `extra` (never file dates)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(f"{path.name}\0{path.stat().st_size}\0".encode())
        digest.update(path.read_bytes())
    for item in extra:
        digest.update(f"\0{item}".encode())
    return digest.hexdigest()


def notebook_cells(notebook: Path = NOTEBOOK) -> str:
    """What of the notebook its executed copy depends on: every cell's type, source, tags and
    attachments, in order (as JSON).

    Not its outputs, execution counts, ids or metadata: Jupyter and VS Code rewrite those on
    every save (the kernel's name and Python version, timings, collapsed views), and the
    export executes the notebook afresh anyway. The tags stay in: they decide what the PDF
    shows (the code of cells tagged "prose" is hidden).
    """
    cells = read_notebook(notebook).cells
    return json.dumps([[cell.cell_type, cell.source, sorted(cell.metadata.get("tags", [])),
                        cell.get("attachments", {})] for cell in cells], sort_keys=True)


def notebook_key(notebook: Path = NOTEBOOK, root: Path = REPO_ROOT) -> str:
    """Cache key of the executed notebook: its cells (see notebook_cells), the other inputs
    (see notebook_inputs), the Python version and what selects the BLAS kernel (the numbers of
    the shuffled-label control follow the kernel's round-off)."""
    others = [path for path in notebook_inputs(notebook, root) if path != notebook]
    return content_key(others, notebook_cells(notebook), sys.version, platform.machine(),
                       os.environ.get("OPENBLAS_CORETYPE", ""))


def executed_notebook(notebook: Path, executed: Path, rerun: bool = False, root: Path = REPO_ROOT):
    """(executed notebook, whether it ran now). The copy in `executed` is reused when its cache
    key matches, i.e. when nothing the outputs depend on has changed since it was executed."""
    import nbformat

    key = notebook_key(notebook, root)
    if not rerun and executed.is_file():
        try:
            nb = nbformat.read(executed, as_version=4)
        except Exception:  # a damaged cache is not an error: execute again
            nb = None
        if nb is not None and nb.metadata.get("sheet05", {}).get("cache_key") == key:
            return nb, False
    nb = execute_notebook(notebook, None)
    nb.metadata["sheet05"] = {"cache_key": key}
    executed.parent.mkdir(parents=True, exist_ok=True)
    tmp = executed.with_name(executed.name + ".tmp")
    nbformat.write(nb, tmp)
    os.replace(tmp, executed)  # only a complete, successful run becomes the cache
    return nb, True


def cached_build(workdir: Path, key: str, make) -> Path:
    """make() builds a PDF in `workdir` (which it empties first); reuse it while `key` is unchanged."""
    stamp = workdir / ".sheet05-key.json"
    try:
        recorded = json.loads(stamp.read_text())
        if recorded["key"] == key and Path(recorded["pdf"]).is_file():
            return Path(recorded["pdf"])
    except (OSError, ValueError, KeyError):
        pass
    pdf = make()
    if pdf is not None:
        stamp.write_text(json.dumps({"key": key, "pdf": str(pdf)}))
    return pdf


# --------------------------------------------------------------------------- theory, appendix


def theory_pdf(workdir: Path) -> Path:
    """Compile the theory in `workdir`. LaTeX's auxiliary files of the last build stay there:
    after a small edit, latexmk then usually needs one XeLaTeX run instead of three (it still
    runs again whenever the references or the contents change)."""
    if workdir.is_dir():
        for path in workdir.rglob("*"):
            if path.is_file() and path.suffix not in LATEX_OUTPUT and path.name != ".sheet05-key.json":
                path.unlink()
    shutil.copytree(THEORY_DIR, workdir, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("*.pdf", "*.aux", "*.log", "*.fls", "*.fdb_latexmk",
                                                  "*.out", "*.toc", "*.xdv"))
    return run_latexmk(workdir / "theory.tex", pretex=r"\def\submissionbuild{}")


def scanned_notes() -> list[Path]:
    """Handwritten notes: every PDF in theory/ except build output, in file-name order."""
    return sorted(p for p in THEORY_DIR.glob("*.pdf") if p.name != "theory.pdf")


def helper_imports(code: str, package_dir: Path | None = None) -> list[str]:
    """Names of the sheet05 modules that `code` imports (absolute or, inside the package,
    relative imports), in order of appearance."""
    package_dir = package_dir or REPO_ROOT / "sheet05"
    names = re.findall(r"(?:from|import)\s+(?:sheet05)?\.(\w+)", code)
    for group in re.findall(r"from\s+(?:sheet05|\.)\s+import\s+\(?([\w\s,]+)", code):
        names += [item.split()[0] for item in group.split(",") if item.strip()]
    found = []
    for name in names:
        if name not in found and (package_dir / f"{name}.py").is_file():
            found.append(name)
    return found


def imported_helper_modules(nb) -> list[str]:
    """Names of the sheet05 modules that the notebook's code cells import, in order of appearance."""
    found = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            found += [name for name in helper_imports(cell.source) if name not in found]
    return found


def appendix_chunks(module: str) -> list[tuple[int, str]]:
    """(first line number, source) of the parts of sheet05/<module>.py that results depend on.

    A module names them in ``__appendix__``: top-level functions and classes, and "__doc__"
    for its docstring; without it the whole module is printed. Plumbing such as the
    download and checksum code of data.py is left out: no result depends on how a file arrived.
    """
    import ast

    source = (REPO_ROOT / "sheet05" / f"{module}.py").read_text(encoding="utf-8")
    lines = source.splitlines()
    tree = ast.parse(source)
    wanted = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__appendix__" for t in node.targets):
            wanted = ast.literal_eval(node.value)
    if wanted is None:
        return [(1, source.rstrip("\n"))]
    if not wanted:
        return []
    chunks = []
    if "__doc__" in wanted and ast.get_docstring(tree) is not None:
        chunks.append((1, "\n".join(lines[:tree.body[0].end_lineno])))
    wanted = [name for name in wanted if name != "__doc__"]
    defined = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    missing = [name for name in wanted if name not in defined]
    if missing:
        raise BuildError(f"sheet05/{module}.py: __appendix__ names {missing}, which it does not define")
    for node in sorted((defined[name] for name in wanted), key=lambda n: n.lineno):
        start = min([node.lineno] + [d.lineno for d in node.decorator_list])
        chunks.append((start, "\n".join(lines[start - 1:node.end_lineno])))
    return chunks


def appendix_pdf(modules: list[str], workdir: Path) -> Path | None:
    """The source that results depend on, of every helper module the notebook imports."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    sections = []
    for name in modules:
        chunks = appendix_chunks(name)
        if not chunks:
            continue
        parts = []
        for k, (first, code) in enumerate(chunks):
            (workdir / f"{name}-{k}.py").write_text(code + "\n", encoding="utf-8")
            parts.append(f"\\VerbatimInput[firstnumber={first}]{{{name}-{k}.py}}\n")
        whole = len(chunks) == 1 and chunks[0][0] == 1
        sections.append(f"\\section{{sheet05/{name}.py{'' if whole else ' (excerpts)'}}}\n"
                        + "\\vspace{-0.3ex}\\centerline{$\\vdots$}\n".join(parts))
    if not sections:
        return None
    (workdir / "appendix.tex").write_text(
        "\\documentclass[10pt,a4paper]{article}\n"
        "\\usepackage{fontspec}\n" + dejavu_fonts(main=0.9, mono=1.0) +
        "\\usepackage[a4paper,hmargin=1.8cm,tmargin=1.7cm,bmargin=2cm]{geometry}\n\\usepackage{fvextra}\n"
        "\\usepackage{hyperref}\\setcounter{secnumdepth}{0}\n"
        "\\makeatletter\\renewcommand\\section{\\@startsection{section}{1}{\\z@}{-2ex plus -0.5ex}"
        "{0.8ex}{\\normalfont\\large\\bfseries}}\\makeatother\n"
        # code and line numbers at 7.2 pt on 8.3 pt lines: small, but it reads on paper
        "\\newcommand\\codesize{\\fontsize{7.2pt}{8.3pt}\\selectfont}\n"
        "\\fvset{fontsize=\\codesize,numbers=left,numbersep=5pt,breaklines,breakanywhere}\n"
        "\\renewcommand\\theFancyVerbLine{\\ttfamily\\codesize\\arabic{FancyVerbLine}}\n"
        "\\begin{document}\n\\ifdefined\\submissionbuild\\pagestyle{empty}\\fi\n"
        "\\noindent The code that results in the notebook depend on: the stable log-sum-exp, what "
        "the loader does to the course data, the exact enumeration of linear regions, the truth "
        "directions and the fit in the row space of a training matrix. Line numbers are those of the files in \\texttt{sheet05/}; the rest of the "
        "package (download, checksums, tables, the PDF build) is plumbing.\n"
        + "".join(sections) + "\\end{document}\n",
        encoding="utf-8",
    )
    return run_latexmk(workdir / "appendix.tex", pretex=r"\def\submissionbuild{}")


# --------------------------------------------------------------------------- answers


def sub_question_order(key: str) -> tuple[int, str]:
    """Sort key of a sub-question label: 1(a) < 1(b) < ... < 4(d) < 5."""
    match = re.fullmatch(r"(\d+)(?:\(([a-z])\))?", key)
    return (int(match.group(1)), match.group(2) or "") if match else (99, key)


def notebook_answers(nb) -> list[tuple[str, str]]:
    """(sub-question, Markdown) of every answer box of the executed notebook, in the sheet's order."""
    from sheet05.report import ANSWER_KEY

    found = [(out["metadata"][ANSWER_KEY]["key"], out["metadata"][ANSWER_KEY]["text"])
             for cell in nb.cells for out in cell.get("outputs", []) if ANSWER_KEY in out.get("metadata", {})]
    return sorted(found, key=lambda item: sub_question_order(item[0]))


def pages_showing(pdf: Path, needles: list[str]) -> dict[str, int]:
    """1-based page of `pdf` on which each text of `needles` first appears (if it does)."""
    from pypdf import PdfReader

    texts = [" ".join((page.extract_text() or "").split()) for page in PdfReader(pdf).pages]
    return {n: next(i for i, t in enumerate(texts, 1) if n in t) for n in needles if any(n in t for t in texts)}


def heading_labels(title: str) -> list[str]:
    """The sub-question labels a heading starts with: "3(d), 3(e) Gradient ..." -> ["3(d)", "3(e)"],
    "Exercise 5 (Bonus): ..." -> ["5"]."""
    if match := re.match(r"Exercise (\d+)\b", title):
        return [match.group(1)]
    match = re.match(r"((?:\d\([a-z]\)(?:,\s*|\s+and\s+)?)+)", title)
    return re.findall(r"\d\([a-z]\)", match.group(1)) if match else []


def markdown_to_latex(texts: list[str]) -> list[str]:
    """Pandoc's LaTeX for several Markdown snippets, in one pandoc run."""
    from nbconvert.filters.pandoc import convert_pandoc

    separator = "SHEETFIVESEPARATOR"
    latex = convert_pandoc(f"\n\n{separator}\n\n".join(texts), "markdown+tex_math_double_backslash", "latex")
    parts = [part.strip() for part in latex.split(separator)]
    if len(parts) != len(texts):
        raise BuildError("could not convert the answers to LaTeX (pandoc merged them)")
    return parts


def _answer_boxes_and_latex(answers: list[tuple[str, str]], notebook_pdf_path: Path):
    """({"Answer 2(a).": page in the notebook PDF}, [LaTeX of each answer]). Both depend only on
    the notebook PDF and the answers, and finding the boxes means reading the text of every
    page, the slowest part of the assembly: they are kept next to the notebook PDF and reused
    while neither changes (after a theory-only edit)."""
    memo = notebook_pdf_path.with_name("answers.json")
    key = content_key([notebook_pdf_path], json.dumps(answers))
    try:
        recorded = json.loads(memo.read_text(encoding="utf-8"))
        if recorded["key"] == key:
            return recorded["boxes"], recorded["latex"]
    except (OSError, ValueError, KeyError):
        pass
    boxes = pages_showing(notebook_pdf_path, [f"Answer {key}." for key, _ in answers])
    latex = markdown_to_latex([text for _, text in answers])
    memo.write_text(json.dumps({"key": key, "boxes": boxes, "latex": latex}), encoding="utf-8")
    return boxes, latex


def answers_page(answers: list[tuple[str, str]], theory_label: str, theory_entries,
                 notebook_label: str, notebook_pdf_path: Path) -> str:
    """The "Answers at a glance" page: one row per sub-question with links to its pages."""
    if not answers:
        return ""
    boxes, latex_texts = _answer_boxes_and_latex(answers, notebook_pdf_path)
    rows = []
    for (key, _), latex in zip(answers, latex_texts):
        where = [rf"\partpage{{{theory_label}}}{{{page}}}" for _, title, page in theory_entries
                 if key in heading_labels(title)][:1]
        if f"Answer {key}." in boxes:
            where.append(rf"\partpage{{{notebook_label}}}{{{boxes[f'Answer {key}.']}}}")
        rows.append(rf"{key} & {latex} & {', '.join(where)} \\[2pt]")
    return (r"""\clearpage
\typeout{SHEET05 answers start on page \thepage}
\section*{Answers at a glance}
{\small\noindent The short answer to every sub-question, with the pages where it is derived (theory)
and worked out (notebook); the page numbers are links. All numbers come from the executed notebook.\par}
\vspace{0.6em}
{\small
\begin{longtable}{@{}>{\bfseries}p{0.9cm}>{\raggedright\arraybackslash}p{\dimexpr\linewidth-2.9cm-4\tabcolsep\relax}>{\raggedleft\arraybackslash}p{1.8cm}@{}}
 & \textit{answer} & \textit{pages} \\ \midrule
\endhead
""" + "\n".join(rows) + "\n\\end{longtable}}\n")


# --------------------------------------------------------------------------- assembly


@dataclass
class Part:
    title: str
    pdf: Path
    entries: list[tuple[int, str, int]] = field(default_factory=list)  # (level, title, page)
    pages: int = 0


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


A4 = (595.2756, 841.8898)  # 210 mm x 297 mm in PostScript points
_TOC_LEVELS = ["subsection", "subsubsection", "paragraph"]


@dataclass
class Layout:
    """Where everything lands in the merged PDF (1-based pages)."""
    answers: int       # first page of the answers at a glance (0: there is none)
    first_part: int    # first page of the first part, right after the front matter
    starts: list[int]  # first page of every part
    total: int


def layout(parts: list[Part], answers: int, first_part: int) -> Layout:
    starts, page = [], first_part
    for part in parts:
        starts.append(page)
        page += part.pages
    return Layout(answers, first_part, starts, page - 1)


def _contents(parts: list[Part], at: Layout) -> str:
    """The table of contents as \\contentsline entries that link to `page.N`: the page numbers
    are known from the layout, so no second LaTeX run (and no .toc file) is needed."""
    lines = [rf"\contentsline{{section}}{{Answers at a glance}}{{{at.answers}}}{{page.{at.answers}}}"] \
        if at.answers else []
    for part, start in zip(parts, at.starts):
        lines.append(rf"\contentsline{{section}}{{{latex_escape(part.title)}}}{{{start}}}{{page.{start}}}")
        for level, title, page in part.entries:
            n = start + page - 1
            lines.append(rf"\contentsline{{{_TOC_LEVELS[level]}}}{{{latex_escape(title)}}}{{{n}}}{{page.{n}}}")
    return "\n".join(lines) + "\n"


def front_matter_tex(parts: list[Part], authors: list[str], answers: str, at: Layout,
                     draft: bool = False) -> str:
    """The title page, the contents and the answers, then one empty page (with its page number)
    for every page of the parts: only these pages are typeset; the parts' own pages are laid over
    the empty ones when the PDF is merged (see merge_front_and_parts)."""
    names = r" \\[0.4em] ".join(latex_escape(a) for a in authors)
    starts = "".join(rf"\expandafter\def\csname partstart@part{i}\endcsname{{{s}}}" + "\n"
                     for i, s in enumerate(at.starts))
    placeholders = r"\null\clearpage" * (at.total - at.first_part + 1)
    return rf"""\documentclass[11pt,a4paper]{{article}}
\usepackage{{fontspec}}
{dejavu_fonts(main=0.95, sans=1)}\usepackage[a4paper,hmargin=2.3cm,vmargin=1.9cm]{{geometry}}
\usepackage{{amsmath}}
\usepackage{{unicode-math}}
\setmathfont{{latinmodern-math.otf}}
\usepackage{{longtable,booktabs,array}}
\usepackage[hidelinks,bookmarks=false]{{hyperref}}
% \partpage{{part label}}{{page within the part}}: the page number in this PDF, linked
{starts}\newcommand\partpage[2]{{\edef\pp{{\the\numexpr\csname partstart@#1\endcsname+#2-1\relax}}\hyperlink{{page.\pp}}{{\pp}}}}
\setcounter{{tocdepth}}{{3}}
\setcounter{{secnumdepth}}{{-10}}
\hypersetup{{pdftitle={{{latex_escape(SHEET)}}},pdfauthor={{{latex_escape(', '.join(authors))}}}}}
\begin{{document}}
\thispagestyle{{empty}}
\begin{{center}}
{DRAFT_MARK if draft else ""}{{\sffamily\large {latex_escape(COURSE)}\par}}
\vspace{{1.2em}}
{{\sffamily\bfseries\LARGE {latex_escape(SHEET)}\par}}
\vspace{{1.6em}}
{{\large Submitted by\\[0.6em] {names}\par}}
\vspace{{1em}}
{{\small Built on {time.strftime('%Y-%m-%d')}\par}}
\end{{center}}
\vspace{{1em}}
\noindent\small The answers at a glance come first (next page), then the theory (exercises 1,
3(a), 3(d), 3(e) and 5), the executed notebook (exercises 2, 3, 4 and the numerical check of 5)
and the helper code that results depend on. Every sub-question is listed below with its page.
{{\footnotesize\section*{{\normalsize Contents}}
{_contents(parts, at)}}}
{answers}\clearpage
\typeout{{SHEET05 parts start on page \thepage}}
{placeholders}
\end{{document}}
"""


def _front_matter_pages(log: Path) -> tuple[int, int]:
    """(first page of the answers or 0, first page after the front matter), from the markers
    that the front matter writes to its LaTeX log."""
    text = log.read_text(errors="replace")
    answers = re.search(r"SHEET05 answers start on page (\d+)", text)
    parts = re.search(r"SHEET05 parts start on page (\d+)", text)
    if parts is None:
        raise BuildError(f"{log}: the front matter did not report where the parts start")
    return (int(answers.group(1)) if answers else 0), int(parts.group(1))


def _add_on_a4(writer, page):
    """Add `page` to `writer` on an A4 sheet and return the writer's page: an A4 page as it is,
    any other size (a scan) scaled to fit and centred, as pdfpages does. Links other than web
    links are dropped: they point into the part's own PDF."""
    from pypdf import Transformation
    from pypdf.generic import ArrayObject, NameObject

    if "/Annots" in page:
        web = [a for a in page["/Annots"] if a.get_object().get("/A", {}).get("/S") == "/URI"]
        page[NameObject("/Annots")] = ArrayObject(web)
    box = page.mediabox
    w, h = float(box.width), float(box.height)
    if (abs(w - A4[0]) < 1 and abs(h - A4[1]) < 1 and float(box.left) == 0 and float(box.bottom) == 0
            and not page.get("/Rotate")):
        return writer.add_page(page)
    sheet = writer.add_blank_page(width=A4[0], height=A4[1])
    if page.get("/Rotate"):
        page = writer.add_page(page)  # turn the content itself, then lay it on the sheet
        page.transfer_rotation_to_content()
        writer.remove_page(page)
        box = page.mediabox
        w, h = float(box.width), float(box.height)
    scale = min(A4[0] / w, A4[1] / h)
    sheet.merge_transformed_page(page, Transformation().translate(-float(box.left), -float(box.bottom))
                                 .scale(scale).translate((A4[0] - w * scale) / 2, (A4[1] - h * scale) / 2))
    return sheet


def _link_to_page_names(front, page) -> None:
    """Point every internal link of `page` (a front-matter page) at `page.N`, N being the page
    it leads to. Each front-matter page has the number of the merged page it stands for, so the
    target is found in the front matter's own PDF, whatever the link names: xdvipdfmx of
    TeX Live 2022 and newer keeps hyperref's names (`page.7`), that of TeX Live 2020 renames
    the ones a link uses to short names ('0', '1', ...) and drops the rest."""
    from pypdf.generic import ArrayObject, NameObject, TextStringObject

    names = None
    for annot in page.get("/Annots", []):
        action = annot.get_object().get("/A")
        if action is None or action.get("/S") != "/GoTo":
            continue
        target = action["/D"]
        if isinstance(target, ArrayObject):  # an explicit destination: [page /XYZ ...]
            index = [p.indirect_reference.idnum for p in front.pages].index(target[0].idnum)
        else:
            names = front.named_destinations if names is None else names
            if str(target) not in names:
                raise BuildError(f"the front matter links to '{target}', a target it does not define")
            index = front.get_destination_page_number(names[str(target)])
        action[NameObject("/D")] = TextStringObject(f"page.{index + 1}")


def merge_front_and_parts(front_pdf: Path, parts: list[Part], at: Layout, out: Path) -> Path:
    """The submission: the typeset front matter, then every page of every part with the page
    number of the empty page it replaces laid over it; bookmarks for the answers, every part and
    its sections; `page.N` destinations (the contents and the answers link to them); page labels
    1, 2, ... as printed."""
    from pypdf import PdfReader, PdfWriter

    front = PdfReader(front_pdf)
    if len(front.pages) != at.total:
        raise BuildError(f"{front_pdf}: {len(front.pages)} pages, expected {at.total}")
    writer = PdfWriter()
    for page in front.pages[:at.first_part - 1]:
        _link_to_page_names(front, writer.add_page(page))
    for part, start in zip(parts, at.starts):
        for k, page in enumerate(PdfReader(part.pdf).pages):
            sheet = _add_on_a4(writer, page)
            sheet.merge_page(front.pages[start - 1 + k])  # the page number, in the footer
            sheet.compress_content_streams()  # merging leaves the page's content uncompressed
    for n in range(1, at.total + 1):
        writer.add_named_destination(f"page.{n}", n - 1)
    if at.answers:
        writer.add_outline_item(title="Answers at a glance", page_number=at.answers - 1)
    for part, start in zip(parts, at.starts):
        parents = [writer.add_outline_item(title=part.title, page_number=start - 1, is_open=False)]
        for level, title, page in part.entries:
            del parents[level + 1:]
            parents.append(writer.add_outline_item(title=title, page_number=start + page - 2,
                                                   parent=parents[level], is_open=False))
    writer.set_page_label(0, at.total - 1, style="/D")
    writer.page_mode = "/UseOutlines"
    writer.add_metadata({k: v for k, v in (front.metadata or {}).items() if k in ("/Title", "/Author")})
    with open(out, "wb") as fh:
        writer.write(fh)
    return out


def assemble(parts: list[Part], authors: list[str], workdir: Path, answers: str = "",
             draft: bool = False) -> Path:
    """The submission PDF: a title page with names and contents, the LaTeX of the answer page
    (`answers`, see answers_page), then every part's pages. A `draft` says DRAFT on page 1.

    Only the front matter is typeset, with an empty numbered page for each page of the parts;
    pypdf then lays the parts' pages over the empty ones. Where the parts start depends on the
    length of the front matter, known only once it is typeset: the last build's value is tried
    first, and the front matter is typeset again only if it has changed. The folder is kept
    between builds, so LaTeX finds its auxiliary files (longtable's column widths) of last time.
    """
    from pypdf import PdfReader

    workdir.mkdir(parents=True, exist_ok=True)
    for part in parts:
        part.pages = len(PdfReader(part.pdf).pages)
    memo = workdir / "front-matter.json"
    try:
        guess = tuple(json.loads(memo.read_text()))
    except (OSError, ValueError):
        guess = (2, 3) if answers else (0, 2)
    tex = workdir / "submission.tex"
    for _ in range(3):
        at = layout(parts, *guess)
        tex.write_text(front_matter_tex(parts, authors, answers, at, draft), encoding="utf-8")
        front = run_latexmk(tex)
        found = _front_matter_pages(tex.with_suffix(".log"))
        if found == guess:
            memo.write_text(json.dumps(found))
            return merge_front_and_parts(front, parts, at, workdir / "merged.pdf")
        guess = found
    raise BuildError(f"{tex}: the length of the front matter does not settle ({guess})")


DRAFT_MARK = (r"{\sffamily\bfseries\Huge DRAFT\par}\vspace{0.3em}"
              r"{\sffamily\small not for submission: built with ./export.sh --draft\par}\vspace{1.2em}" "\n")


def replace_atomically(built: Path, target: Path = OUTPUT) -> None:
    """Copy next to `target`, then rename: readers see the old or the new PDF, never half."""
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        shutil.copyfile(built, tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------- main


def _theory_and_appendix(notebook: Path):
    sources = sorted(p for p in THEORY_DIR.rglob("*") if p.is_file() and p.suffix not in LATEX_OUTPUT)
    pdf = cached_build(BUILD / "theory", content_key([*sources, EXPORT_CODE]), lambda: theory_pdf(BUILD / "theory"))
    theory = Part("Part I: Theory (exercises 1, 3(a), 3(d), 3(e) and 5)", pdf)
    notes = [Part(f"Handwritten notes: {p.name}", p) for p in scanned_notes()]
    modules = imported_helper_modules(read_notebook(notebook))
    code = [REPO_ROOT / "sheet05" / f"{m}.py" for m in modules]
    pdf = cached_build(BUILD / "appendix", content_key([*code, EXPORT_CODE], *modules),
                       lambda: appendix_pdf(modules, BUILD / "appendix"))
    appendix = Part("Part III: Appendix, the helper code that results depend on", pdf) if pdf else None
    return theory, notes, appendix


def build(authors: list[str], notebook: Path = NOTEBOOK, output: Path = OUTPUT,
          first_step: int = 4, total: int = 7, rerun: bool = False, draft: bool = False) -> Path:
    if len(authors) != 2 or not all(a.strip() for a in authors):
        raise BuildError(f"need exactly two non-empty names (a group of two), got {authors!r}")
    n = first_step
    # The theory and the appendix do not depend on the notebook's outputs: compile them on
    # the second core while the notebook runs (its BLAS is limited to one thread).
    with ThreadPoolExecutor(max_workers=1) as pool:
        side = pool.submit(_theory_and_appendix, notebook)
        with step(n, total, f"Executing {notebook.name} top to bottom"):
            executed = BUILD / "exercise_sheet.executed.ipynb"
            nb, ran = executed_notebook(notebook, executed, rerun)
            if not ran:
                print(f"      no cell changed since its last run (nor the sheet05 modules, requirements, "
                      f"Python, data manifest): reusing {executed.relative_to(REPO_ROOT)}; "
                      "./export.sh --rerun executes it anyway", flush=True)
        with step(n + 1, total, "Converting the notebook to PDF (nbconvert + XeLaTeX)"):
            key = content_key([executed, *TEMPLATES.rglob("*.j2"), *TEMPLATES.rglob("*.json"), EXPORT_CODE])
            notebook_part = Part("Part II: Notebook (exercises 2-4; numerical checks of 1, 3 and 5)",
                                 cached_build(BUILD / "notebook", key, lambda: notebook_pdf(nb, BUILD / "notebook")))
        with step(n + 2, total, "Theory (latexmk, XeLaTeX) and appendix, compiled alongside step 4"):
            theory, notes, appendix = side.result()
    parts = [theory, *notes, notebook_part] + ([appendix] if appendix else [])
    with step(n + 3, total, "Assembling the title page, answers, contents and all parts"):
        for part in parts:
            part.entries = outline_entries(part.pdf)
        answers = answers_page(notebook_answers(nb), "part0", theory.entries,
                               f"part{parts.index(notebook_part)}", notebook_part.pdf)
        pdf = assemble(parts, authors, BUILD / "submission", answers, draft=draft)
        replace_atomically(pdf, output)
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--authors", nargs=2, metavar=("FIRST", "SECOND"),
                        help=f"the two group members (default: the names in {AUTHORS_FILE.name})")
    parser.add_argument("--first-step", type=int, default=4)
    parser.add_argument("--total-steps", type=int, default=7)
    parser.add_argument("--rerun", action="store_true",
                        help="execute the notebook even if nothing it depends on has changed")
    parser.add_argument("--draft", action="store_true",
                        help=f"build {DRAFT_OUTPUT.name}, marked DRAFT, even without both names")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    output = DRAFT_OUTPUT if args.draft else OUTPUT
    try:
        try:
            authors = check_names(args.authors, draft=args.draft, path=str(AUTHORS_FILE))
        except AuthorsError as err:
            raise BuildError(f"no names for the title page yet.\n  {err}") from None
        out = build(authors, output=output, first_step=args.first_step, total=args.total_steps,
                    rerun=args.rerun, draft=args.draft)
    except BuildError as err:
        print(f"\nexport failed: {err}\n{left_as_it_was(output)}", file=sys.stderr)
        return 1
    where = out.relative_to(REPO_ROOT) if out.is_relative_to(REPO_ROOT) else out
    if args.draft:
        print(f"wrote {where}, a DRAFT (its title page says so; {OUTPUT.name} was left as it was), "
              f"in {time.perf_counter() - start:.1f} s")
    else:
        print(f"wrote {where} in {time.perf_counter() - start:.1f} s: the PDF to hand in "
              f"(names on page 1: {authors[0]}, {authors[1]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
