"""Step 1 of ./export.sh (the Python environment) with pip and with uv, side by side, in one run
(not a test: timings depend on the machine and its network).

    .venv/bin/python benchmarks/setup_step1.py [--rounds 3]

Each round creates .venv from nothing in a temporary copy of the repository, once with
INSTALLER=pip and once with INSTALLER=uv (alternating which goes first, so that a busier
moment hurts both alike), from a warm package cache: one untimed run of each comes first.
The time is what export.sh reports for step 1 ("done in x.y s"). uv is the one on the PATH,
else the one that requirements.txt installs into .venv. Reports the medians and their ratio
(the target: uv takes at most 0.35 x pip's time).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NEEDED = ["export.sh", "requirements.txt", "torch-cpu-wheels.html", "sheet05", "data/lie_detection.sha256"]


def copy_for_step1(dest: Path) -> Path:
    for rel in NEEDED:
        source, target = REPO / rel, dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    return dest


def uv_folder(work: Path) -> str:
    """A folder with only uv in it, for the PATH."""
    uv = shutil.which("uv") or str(REPO / ".venv" / "bin" / "uv")
    if not os.access(uv, os.X_OK):
        sys.exit("no uv: neither on the PATH nor in .venv (./export.sh --setup-only installs it)")
    folder = work / "uv-bin"
    folder.mkdir(exist_ok=True)
    if not (folder / "uv").exists():
        (folder / "uv").symlink_to(uv)
    return str(folder)


def step1_seconds(repo: Path, installer: str, path: str) -> float:
    """Time of step 1 (as export.sh reports it) for a new .venv."""
    shutil.rmtree(repo / ".venv", ignore_errors=True)
    env = dict(os.environ, INSTALLER=installer, PATH=path)
    start = time.perf_counter()
    result = subprocess.run(["./export.sh", "--setup-only"], cwd=repo, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    match = re.search(r"\[1/7\].*?done in (\d+\.\d+) s", result.stdout, re.S)
    if not match:
        sys.exit("step 1 failed with %s:\n%s\n%s" % (installer, result.stdout[-3000:], result.stderr[-3000:]))
    if "installer: %s" % installer not in result.stdout:
        sys.exit("export.sh did not use %s:\n%s" % (installer, result.stdout[:2000]))
    return float(match.group(1)) if match else wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sheet05-bench-setup-"))
    try:
        repo = copy_for_step1(work / "repo")
        path = uv_folder(work) + os.pathsep + os.environ.get("PATH", "")
        print("warming the caches (one untimed run each) ...", flush=True)
        for installer in ("pip", "uv"):
            step1_seconds(repo, installer, path)
        times = {"pip": [], "uv": []}
        for round_ in range(args.rounds):
            order = ("pip", "uv") if round_ % 2 == 0 else ("uv", "pip")
            for installer in order:
                seconds = step1_seconds(repo, installer, path)
                times[installer].append(seconds)
                print("round %d  %-3s  %6.1f s" % (round_ + 1, installer, seconds), flush=True)
        pip, uv = statistics.median(times["pip"]), statistics.median(times["uv"])
        print()
        print("step 1 of ./export.sh, new .venv, warm cache, median of %d (range):" % args.rounds)
        print("  pip  %6.1f s  (%.1f-%.1f)" % (pip, min(times["pip"]), max(times["pip"])))
        print("  uv   %6.1f s  (%.1f-%.1f)" % (uv, min(times["uv"]), max(times["uv"])))
        print("  uv / pip = %.3f  (target: <= 0.35)" % (uv / pip))
        return 0 if uv / pip <= 0.35 else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
