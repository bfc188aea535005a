"""Benchmarks of the edit-export loop, in one command (not a test: timings depend on the machine).

    .venv/bin/python benchmarks/bench.py [--runs 3]
    .venv/bin/python benchmarks/bench.py --against COMMIT [--runs 3] [--venv PATH]

Reports, as the median (and range) over --runs repetitions:

1. the notebook alone, as `jupyter nbconvert --to notebook --execute` runs it: wall time and
   peak memory (the largest process: the kernel), from the operating system's accounting;
2. the time of each notebook section (from the execution timestamps nbclient records per cell);
3. ./export.sh after a theory-only change (the notebook is reused from the cache);
4. ./export.sh after a notebook change (`--rerun`: the notebook is executed again).

Exports run in a temporary copy of the repository, sharing .venv and the data, so the working
tree and its submission.pdf are not touched.

With --against COMMIT it compares this working tree with that commit instead (a copy made with
`git archive`, sharing the data, with its own build folder; it shares .venv when that meets
every pin of the commit's requirements.txt, else pass that commit's own with --venv): (1) the
notebook under `jupyter nbconvert --execute` and (2) ./export.sh after a theory-only change,
each run alternately on the two trees (after one untimed warm-up run of each: A B, B A, A B,
...), so that a machine whose speed drifts (other programs, a shared machine) slows both
alike. It prints every pair, then the median of the ratios "that commit / this tree" (above
1: this tree is faster) and the peak memory.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
STAMP = ".sheet05-setup.json"   # the set-up's record inside .venv (sheet05/setup.py)
NOTEBOOK = REPO / "exercise_sheet.ipynb"
COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", "build", "submission.pdf", "lie_detection", "__pycache__",
                                     ".pytest_cache", ".ipynb_checkpoints")


def megabytes(maxrss: int) -> float:
    """ru_maxrss in MB: it is in bytes on macOS and in KiB on Linux."""
    return maxrss * (1 if sys.platform == "darwin" else 1024) / 1e6


def run_notebook(out: Path, repo: Path = REPO) -> tuple[float, float]:
    """(wall seconds, peak MB) of one `jupyter nbconvert --execute` of the notebook of `repo`,
    with the environment export.sh gives it (one BLAS thread, PDF figures)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", SHEET05_EXPORT="1", PYDEVD_DISABLE_FILE_VALIDATION="1")
    cmd = [str(repo / ".venv" / "bin" / "jupyter"), "nbconvert", "--to", "notebook", "--execute",
           "--ExecutePreprocessor.timeout=600", "--output", str(out), str(repo / NOTEBOOK.name)]
    # ru_maxrss of children is a running maximum: run each measurement in a fresh process
    code = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
            "subprocess.run(sys.argv[1:], check=True, capture_output=True); "
            "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    result = subprocess.run([sys.executable, "-c", code, *cmd], cwd=repo, env=env, capture_output=True,
                            text=True, check=True)
    wall, rss = result.stdout.split()
    return float(wall), megabytes(int(rss))


def section_times(executed: Path) -> dict[str, float]:
    """Seconds spent in each top-level section (# and ## headings) of an executed notebook."""
    nb = nbformat.read(executed, as_version=4)
    times, section = {}, "set-up (before the first section)"
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if re.match(r"#{1,2} ", line):
                    section = line.lstrip("#").strip()[:60]
        elif cell.cell_type == "code":
            ex = cell.metadata.get("execution", {})
            if "iopub.execute_input" in ex and "shell.execute_reply" in ex:
                start, end = (datetime.fromisoformat(ex[k].replace("Z", "+00:00"))
                              for k in ("iopub.execute_input", "shell.execute_reply"))
                times[section] = times.get(section, 0.0) + (end - start).total_seconds()
    return times


def repo_copy(root: Path) -> Path:
    """A copy of the working tree that shares .venv and the course data."""
    copy = root / "repo"
    shutil.copytree(REPO, copy, ignore=COPY_IGNORE)
    (copy / ".venv").symlink_to(REPO / ".venv")
    (copy / "data" / "lie_detection").symlink_to(REPO / "data" / "lie_detection")
    return copy


def unmet_pins(requirements: Path, venv: Path) -> list[str]:
    """The lines `name==version` of a requirements file (for this platform) that the packages
    installed in `venv` do not satisfy."""
    code = """
import sys
from importlib.metadata import PackageNotFoundError, version
from packaging.requirements import InvalidRequirement, Requirement
unmet = []
for line in open(sys.argv[1], encoding="utf-8"):
    line = line.split(" #")[0].strip().rstrip("\\\\").strip()
    if not line or line.startswith(("#", "-", "--")):
        continue
    try:
        req = Requirement(line)
    except InvalidRequirement:
        continue
    if req.marker is not None and not req.marker.evaluate():
        continue
    try:
        have = version(req.name)
    except PackageNotFoundError:
        unmet.append(f"{req} (not installed)")
        continue
    if not req.specifier.contains(have, prereleases=True):
        unmet.append(f"{req} (installed: {have})")
print("\\n".join(unmet))
"""
    result = subprocess.run([str(venv / "bin" / "python"), "-c", code, str(requirements)],
                            capture_output=True, text=True, check=True)
    return [line for line in result.stdout.splitlines() if line]


def shared_venv_view(venv: Path, copy: Path) -> None:
    """copy/.venv: links to everything in `venv` but its set-up record, and a record of its own
    that names the copy's requirements.txt. The copy's set-up then finds its .venv current and
    installs nothing; with a plain link it would install into (and re-record) the shared one."""
    view = copy / ".venv"
    view.mkdir()
    for entry in venv.iterdir():
        if entry.name != STAMP:
            (view / entry.name).symlink_to(entry)
    record = json.loads((venv / STAMP).read_text(encoding="utf-8"))
    record["requirements_sha256"] = hashlib.sha256((copy / "requirements.txt").read_bytes()).hexdigest()
    (view / STAMP).write_text(json.dumps(record, indent=1), encoding="utf-8")


def commit_copy(root: Path, commit: str, venv: Path) -> Path:
    """The files of `commit` (git archive), with the course data of this tree and the Python
    environment `venv`: this tree's .venv when it meets every pin of the commit."""
    copy = root / f"at-{commit}"
    copy.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", commit], capture_output=True)
    if archive.returncode != 0:
        raise SystemExit(f"git archive {commit} failed: {archive.stderr.decode(errors='replace').strip()}")
    subprocess.run(["tar", "-x", "-C", str(copy)], input=archive.stdout, check=True)
    if (copy / "requirements.txt").read_bytes() != (REPO / "requirements.txt").read_bytes():
        unmet = unmet_pins(copy / "requirements.txt", venv)
        if unmet:
            raise SystemExit(f"{commit} pins packages that {venv} does not have: {', '.join(unmet)}.\n"
                             f"Make a .venv for it (its ./export.sh --setup-only in a worktree) and pass "
                             f"--venv PATH/.venv.")
        print(f"{commit}: every pin of its requirements.txt is met by {venv}, so both trees share it")
        shared_venv_view(venv, copy)
    else:
        (copy / ".venv").symlink_to(venv)
    (copy / "data" / "lie_detection").symlink_to(REPO / "data" / "lie_detection")
    return copy


def touch_theory(repo: Path, i: int) -> None:
    tex = repo / "theory" / "theory.tex"
    tex.write_text(tex.read_text(encoding="utf-8") + f"\n% benchmark edit {i}\n", encoding="utf-8")


def ratios(pairs: list[tuple[float, float]], unit: str = "s") -> str:
    """Each pair (that commit, this tree), then the median ratio and the medians of both."""
    for i, (old, new) in enumerate(pairs, 1):
        print(f"   pair {i}: {old:.1f} {unit} vs {new:.1f} {unit}, ratio {old / new:.2f}")
    old, new = zip(*pairs)
    return (f"median ratio {statistics.median(o / n for o, n in pairs):.2f} "
            f"(medians {statistics.median(old):.1f} {unit} vs {statistics.median(new):.1f} {unit})")


def compare(commit: str, runs: int, authors: list[str], venv: Path) -> int:
    """Both ratios against `commit`, measured alternately in one run."""
    with tempfile.TemporaryDirectory(prefix="sheet05-bench-") as tmp:
        tmp = Path(tmp)
        base, here = commit_copy(tmp, commit, venv), repo_copy(tmp)
        print(f"this tree vs {commit}: {runs} runs each, alternating", flush=True)
        for repo in (base, here):   # warm-up, not timed: the first run reads every file from disk
            run_notebook(tmp / f"warm-up-{repo.name}.ipynb", repo)
        notebook, peaks = [], {base: [], here: []}
        for i in range(runs):
            walls = {}
            # A B, then B A, ...: neither tree always runs first, on a machine that slows or speeds up
            for repo in ((base, here) if i % 2 == 0 else (here, base)):
                walls[repo], peak = run_notebook(tmp / f"executed-{repo.name}-{i}.ipynb", repo)
                peaks[repo].append(peak)
            notebook.append((walls[base], walls[here]))
        print("1. notebook (jupyter nbconvert --execute), that commit vs this tree:")
        summary_1 = ratios(notebook)
        print(f"   {summary_1}; peak memory {max(peaks[base]):.0f} MB vs {max(peaks[here]):.0f} MB")
        for repo in (base, here):
            timed_export(repo, "--authors", *authors)  # warm: builds every cache once
        theory = []
        for i in range(runs):
            seconds = {}
            for repo in ((base, here) if i % 2 == 0 else (here, base)):
                touch_theory(repo, i)
                seconds[repo], out = timed_export(repo, "--authors", *authors)
                if "reusing" not in out:
                    raise SystemExit(f"the theory-only export of {repo.name} executed the notebook again")
            theory.append((seconds[base], seconds[here]))
        print("2. ./export.sh after a theory-only change, that commit vs this tree:")
        summary_2 = ratios(theory)
        print(f"   {summary_2}")
        print(f"\nsummary against {commit}: notebook {summary_1}; theory-only re-export {summary_2}")
    return 0


def timed_export(repo: Path, *args: str) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(["./export.sh", "--authors", "Ada Lovelace", "Alan Turing", *args], cwd=repo,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"export failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return time.perf_counter() - start, result.stdout


def summary(values: list[float], unit: str, digits: int = 1) -> str:
    return (f"median {statistics.median(values):.{digits}f} {unit} "
            f"(min {min(values):.{digits}f}, max {max(values):.{digits}f}, {len(values)} runs)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--against", metavar="COMMIT",
                        help="compare with this commit (alternating runs; ratios that commit / this tree)")
    parser.add_argument("--authors", nargs=2, default=["Ada Lovelace", "Alan Turing"],
                        help="names for the exports (default: two sample names)")
    parser.add_argument("--venv", type=Path, default=REPO / ".venv",
                        help="with --against: the Python environment for that commit (default: this "
                             "tree's .venv, used only if it meets every pin of the commit)")
    args = parser.parse_args()
    if args.against:
        return compare(args.against, args.runs, args.authors, args.venv.resolve())
    with tempfile.TemporaryDirectory(prefix="sheet05-bench-") as tmp:
        tmp = Path(tmp)
        walls, peaks, sections = [], [], []
        for i in range(args.runs):
            wall, peak = run_notebook(tmp / f"executed-{i}.ipynb")
            walls.append(wall)
            peaks.append(peak)
            sections.append(section_times(tmp / f"executed-{i}.ipynb"))
            print(f"notebook run {i + 1}: {wall:.1f} s, peak {peak:.0f} MB", flush=True)
        print(f"\n1. notebook (jupyter nbconvert --execute): wall {summary(walls, 's')}; "
              f"peak memory {summary(peaks, 'MB', 0)}")
        print("\n2. time per section (median over the runs):")
        for name in sections[0]:
            print(f"   {statistics.median(s.get(name, 0.0) for s in sections):6.2f} s  {name}")

        repo = repo_copy(tmp)
        names = ("--authors", *args.authors)
        timed_export(repo, *names)  # warm: builds every cache once
        theory, full = [], []
        tex = repo / "theory" / "theory.tex"
        for i in range(args.runs):
            tex.write_text(tex.read_text(encoding="utf-8") + f"\n% benchmark edit {i}\n", encoding="utf-8")
            seconds, out = timed_export(repo, *names)
            if "reusing" not in out:
                raise SystemExit("the theory-only export executed the notebook again")
            theory.append(seconds)
            full.append(timed_export(repo, *names, "--rerun")[0])
        print(f"\n3. ./export.sh after a theory-only change: {summary(theory, 's')}")
        print(f"4. ./export.sh after a notebook change (--rerun): {summary(full, 's')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
