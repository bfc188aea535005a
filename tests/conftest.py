"""Shared fixtures: the course data (fetched once, verified) and one end-to-end export."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _absolute_mirror():
    """LIE_DETECTION_MIRROR made absolute, so that it still works from other folders."""
    mirror = os.environ.get("LIE_DETECTION_MIRROR")
    if mirror:
        os.environ["LIE_DETECTION_MIRROR"] = str((REPO / mirror).resolve() if not Path(mirror).is_absolute() else Path(mirror))
    return os.environ.get("LIE_DETECTION_MIRROR")


MIRROR = _absolute_mirror()


@pytest.fixture(scope="session")
def course_data():
    """The verified data folder (fetched from the mirror or the public URL if needed)."""
    from sheet05 import data

    data.fetch(log=lambda *_: None)
    data.verify()
    return data.DATA_DIR


def copy_of_repo(dest: Path) -> Path:
    """The project's working files (tracked and new, not ignored) copied to `dest`.

    The virtual environment is linked, not copied, so export.sh finds it up to date.
    """
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    (dest / ".venv").symlink_to(REPO / ".venv")
    return dest


def run_export(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["./export.sh", *args], cwd=repo, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="session")
def exported(tmp_path_factory, course_data):
    """A copy of the repository in which `./export.sh --authors ...` has run once."""
    repo = copy_of_repo(tmp_path_factory.mktemp("export") / "repo")
    # reuse the verified data instead of copying 60 MB again; export.sh verifies it anyway
    (repo / "data" / "lie_detection").symlink_to(course_data)
    result = run_export(repo, "--authors", "Ada Lovelace", "Alan Turing")
    return repo, result
