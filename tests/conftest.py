"""Shared fixtures: the course data (fetched once, verified), copies of the repository, the
emulations of other platforms, and one end-to-end export.

The end-to-end export runs as it would on a Mac with MacTeX, in a path that TeX finds hard:
a PATH without sha256sum, fc-list, pdftotext and apt-get and with a BSD-like `date`
(no %N), a fontconfig that sees no fonts at all (XeTeX then finds only what it loads by file
name, as with MacTeX's fonts in the TeX tree), and a repository folder whose path holds a
space, an umlaut, #, % and ~.
"""

import functools
import http.server
import importlib.util
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# What a copy leaves out when the repository is not a git checkout (a "Download ZIP" copy):
# the same as .gitignore, fixed here so that no git is needed.
IGNORED_NAMES = {".git", ".venv", "build", "__pycache__", ".pytest_cache", ".ipynb_checkpoints", ".ruff_cache",
                 "submission.pdf", "draft.pdf", "build-apt.log"}
IGNORED_PATHS = {"data/lie_detection", "theory/theory.pdf"}
IGNORED_SUFFIXES = {".pyc"}
IGNORED_THEORY_SUFFIXES = {".aux", ".log", ".fls", ".fdb_latexmk", ".out", ".toc", ".xdv"}

# A repository path with every character that TeX or the shell treats specially.
AWKWARD_DIR = "Prüfung #1 100% ~tmp"


def _absolute_mirror():
    """LIE_DETECTION_MIRROR made absolute, so that it still works from other folders."""
    mirror = os.environ.get("LIE_DETECTION_MIRROR")
    if mirror:
        os.environ["LIE_DETECTION_MIRROR"] = str((REPO / mirror).resolve() if not Path(mirror).is_absolute() else Path(mirror))
    return os.environ.get("LIE_DETECTION_MIRROR")


MIRROR = _absolute_mirror()


def pytest_runtest_setup(item):
    """Tests marked cpu_lock read the lock's torch +cpu pin. The platform matrix tests Python
    3.13 and 3.14 with a copy whose lock pins PyPI's torch instead (PyTorch's CPU page is out of
    its reach) and says so in SHEET05_TORCH_REPLACED: there, and only if the copy's lock indeed
    has no +cpu pin, they are skipped with that reason."""
    from sheet05 import setup

    replaced = os.environ.get("SHEET05_TORCH_REPLACED")
    if item.get_closest_marker("cpu_lock") and replaced and "+cpu" not in (setup.pinned_torch() or ""):
        pytest.skip(replaced)


@pytest.fixture(scope="session")
def course_data():
    """The verified data folder (fetched from the mirror or the public URL if needed)."""
    from sheet05 import data

    data.fetch(log=lambda *_: None)
    data.verify()
    return data.DATA_DIR


def is_git_checkout(root: Path = REPO) -> bool:
    return (root / ".git").exists() and shutil.which("git") is not None


def _ignored(rel: Path) -> bool:
    posix = rel.as_posix()
    if rel.name in IGNORED_NAMES or posix in IGNORED_PATHS or rel.suffix in IGNORED_SUFFIXES:
        return True
    return rel.parts[0] == "theory" and rel.suffix in IGNORED_THEORY_SUFFIXES


def working_files(root: Path = REPO, use_git: bool | None = None) -> list[str]:
    """The project's files (relative paths): from git when `root` is a checkout (tracked and
    new, not ignored), else by walking the tree with the fixed ignore list."""
    if use_git is None:
        use_git = is_git_checkout(root)
    if use_git:
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                             cwd=root, capture_output=True, text=True, check=True).stdout
        return [rel for rel in out.split("\0") if rel and (root / rel).is_file()]
    files = []
    for folder, dirs, names in os.walk(root):
        here = Path(folder).relative_to(root)
        dirs[:] = sorted(d for d in dirs if not _ignored(here / d))
        files += [(here / n).as_posix() for n in sorted(names) if not _ignored(here / n)]
    return files


def committed_text(rel: str) -> str:
    """The file `rel` as the repository ships it: the committed version (HEAD), not the working
    copy that students edit (their names in authors.txt, the notebook saved with outputs);
    without git (a "Download ZIP" copy), the working copy."""
    if is_git_checkout():
        result = subprocess.run(["git", "show", f"HEAD:{rel}"], cwd=REPO, capture_output=True)
        if result.returncode == 0:
            return result.stdout.decode("utf-8")
    return (REPO / rel).read_text(encoding="utf-8")


def copy_of_repo(dest: Path, link_venv: bool = True, use_git: bool | None = None) -> Path:
    """The project's working files copied to `dest` (with or without git, see working_files).

    The virtual environment is linked, not copied, so export.sh finds it up to date.
    """
    for rel in working_files(REPO, use_git):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dest / rel)
    if link_venv:
        (dest / ".venv").symlink_to(REPO / ".venv")
    return dest


def require_set_up_venv():
    """Skip unless the repository's .venv is up to date: tests that link it into a copy and
    run ./export.sh must not make export.sh install into it (run ./export.sh --setup-only)."""
    from sheet05 import setup

    action, reason = setup.plan_venv(os.path.lexists(setup.venv_python()), setup.probe_venv(), setup.read_stamp(),
                                     setup.file_sha256(setup.REQUIREMENTS), setup.interpreter_of_this_process(),
                                     False)
    if action != "ok":
        pytest.skip(f".venv is not set up ({reason}): run ./export.sh --setup-only first")


def python_with_pip(folder: Path) -> str:
    """An interpreter that has pip: this one, or, in a .venv made by `uv venv` (which has no
    pip), a new venv in `folder` with the pip that Python bundles (ensurepip, no network)."""
    if importlib.util.find_spec("pip") is not None:
        return sys.executable
    result = subprocess.run([sys.executable, "-m", "venv", str(folder)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"this .venv has no pip (made by uv), and this Python cannot make a venv with pip "
                    f"(Debian/Ubuntu: sudo apt-get install python3-venv): {result.stderr.strip()[-300:]}")
    return str(folder / "bin" / "python")


def run_export(repo: Path, *args: str, env: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(["./export.sh", *args], cwd=repo, capture_output=True, text=True, timeout=timeout,
                          env=env)


# --------------------------------------------------------------------------- wheel pages


def fake_wheel(folder: Path, name: str = "torch", version: str = "2.13.0+cpu") -> Path:
    """A tiny valid wheel with no dependencies (built by tests/indexes.py, which imports this module)."""
    from indexes import wheel

    return wheel(folder, name, version)


class WheelServer:
    """Serves a folder on 127.0.0.1 (its listing is a find-links page) and counts requests."""

    def __init__(self, folder: Path):
        requests = self.requests = []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                requests.append(self.path)

        handler = functools.partial(Handler, directory=str(folder))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------- emulations

# Commands that a Mac does not have (GNU coreutils' sha256sum, fontconfig's tools), that only
# the tests use (poppler), or that must not be called (apt, sudo).
NOT_ON_A_MAC = {"sha256sum", "fc-list", "fc-match", "fc-cache", "fc-query", "fc-pattern",
                "pdftotext", "pdfinfo", "pdffonts", "apt-get", "apt", "dpkg", "sudo"}


def mac_like_path(folder: Path) -> str:
    """A PATH of one folder that mirrors today's PATH, less NOT_ON_A_MAC, with a `date` that
    has no %N (BSD's prints a literal N: '1795976022N')."""
    folder.mkdir(parents=True, exist_ok=True)
    real_date = shutil.which("date")
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if not directory or not os.path.isdir(directory):
            continue
        for name in sorted(os.listdir(directory)):
            target = Path(directory) / name
            if name in NOT_ON_A_MAC or name == "date" or (folder / name).exists() or (folder / name).is_symlink():
                continue
            if os.access(target, os.X_OK) and not target.is_dir():
                (folder / name).symlink_to(target)
    date = folder / "date"
    date.write_text("#!/bin/sh\n# BSD date: no %N\n"
                    "for a in \"$@\"; do case $a in *%N*) "
                    f"{real_date} \"$(printf '%s' \"$a\" | sed 's/%N/N/g')\"; exit 0 ;; esac; done\n"
                    f"exec {real_date} \"$@\"\n")
    date.chmod(0o755)
    return str(folder)


def fontconfig_without_fonts(folder: Path) -> str:
    """A fonts.conf that lists no font folder: XeTeX finds nothing by family name, as on a Mac
    where MacTeX's fonts lie in the TeX tree, out of CoreText's sight."""
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "fonts.conf"
    conf.write_text('<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n'
                    f"<fontconfig><cachedir>{folder / 'cache'}</cachedir></fontconfig>\n")
    return str(conf)


def mac_like_env(folder: Path) -> dict:
    env = dict(os.environ)
    env["PATH"] = mac_like_path(folder / "bin")
    env["FONTCONFIG_FILE"] = fontconfig_without_fonts(folder / "fontconfig")
    return env


@pytest.fixture(scope="session")
def exported(tmp_path_factory, course_data):
    """A copy of the repository in which `./export.sh --authors ...` has run once, in the
    Mac-like emulation and at an awkward path (see the module's docstring)."""
    base = tmp_path_factory.mktemp("export")
    repo = copy_of_repo(base / AWKWARD_DIR / "repo")
    # reuse the verified data instead of copying 60 MB again; export.sh verifies it anyway
    (repo / "data" / "lie_detection").symlink_to(course_data)
    env = mac_like_env(base / "mac")
    env["SHEET05_CHECK_LAYOUT"] = "1"   # plt.show() checks each figure's margins (sheet05.runtime)
    result = run_export(repo, "--authors", "Ada Lovelace", "Alan Turing", env=env)
    return repo, result
