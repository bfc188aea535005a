"""The students' machines, emulated here: a Mac (no sha256sum, fc-list or apt, BSD date), TeX
fonts that the system's font lookup cannot see (MacTeX), awkward repository paths, a
"Download ZIP" copy without git, a Windows-side clone (CRLF), a python.org Python without
certificates, and a normal user without root who already has TeX."""

import os
import pwd
import re
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
import urllib.error
from pathlib import Path

import nbformat
import pytest

from conftest import (AWKWARD_DIR, MIRROR, NOT_ON_A_MAC, REPO, WheelServer, copy_of_repo,
                      fontconfig_without_fonts, is_git_checkout, mac_like_env, require_set_up_venv, run_export,
                      working_files)
from sheet05 import data, export, setup


def pdffonts(pdf: Path) -> str:
    if shutil.which("pdffonts") is None:
        pytest.fail("pdffonts is missing: install poppler (sudo apt-get install poppler-utils; sudo dnf install "
                    "poppler-utils; sudo pacman -S poppler; brew install poppler)")
    return subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True).stdout


# --------------------------------------------------------------------------- a Mac


def test_setup_on_a_mac_like_path(tmp_path, course_data):
    """No sha256sum, fc-list, pdftotext or apt-get on the PATH, a date without %N, and no
    fonts for fontconfig: the set-up still passes all three steps, and installs nothing."""
    require_set_up_venv()
    env = mac_like_env(tmp_path / "mac")
    for tool in NOT_ON_A_MAC:
        assert shutil.which(tool, path=env["PATH"]) is None, tool
    date = subprocess.run(["date", "+%s%N"], capture_output=True, text=True, env=env).stdout.strip()
    assert re.fullmatch(r"\d+N", date), date  # BSD's answer, which broke the old export.sh
    repo = copy_of_repo(tmp_path / "repo")
    (repo / "data" / "lie_detection").symlink_to(course_data)
    result = run_export(repo, "--setup-only", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    for n in (1, 2, 3):
        assert f"[{n}/7]" in result.stdout
    assert len(re.findall(r"done in \d+\.\d s", result.stdout)) == 3
    assert "all present" in result.stdout and "set-up complete" in result.stdout


@pytest.mark.slow
def test_export_ran_in_the_emulations(exported):
    """The end-to-end export (conftest.exported) ran on the Mac-like PATH, with no fonts for
    fontconfig, at a path with a space, an umlaut, #, % and ~; its fonts are the files."""
    repo, result = exported
    assert AWKWARD_DIR in str(repo) and all(c in str(repo) for c in " ü#%~")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    fonts = pdffonts(repo / "submission.pdf")
    for face in ["DejaVuSerif", "DejaVuSerif-Bold", "DejaVuSans-Bold", "DejaVuSansMono", "LatinModernMath",
                 "LMRoman10-Regular"]:
        assert re.search(rf"\+{face}\b", fonts), face


# --------------------------------------------------------------------------- TeX fonts by file name


def test_fonts_load_by_file_name_without_system_fonts(tmp_path, monkeypatch):
    """Every document of the build compiles when fontconfig sees no fonts (as MacTeX's fonts
    are invisible to CoreText) and kpathsea searches no system font folder (OSFONTDIR is
    Debian's addition; TeX Live from tug.org, MacTeX, Fedora and Arch have none): they load
    TeX Live's fonts by file name and DejaVu from matplotlib's copy in .venv."""
    monkeypatch.setenv("FONTCONFIG_FILE", fontconfig_without_fonts(tmp_path / "fontconfig"))
    (tmp_path / "no-os-fonts").mkdir()
    monkeypatch.setenv("OSFONTDIR", str(tmp_path / "no-os-fonts"))
    # the emulation is real: a font by family name is not found any more, nor DejaVu by file
    # name (unless this TeX Live has a copy in its own tree)
    probe = tmp_path / "probe" / "byname.tex"
    probe.parent.mkdir()
    probe.write_text("\\documentclass{article}\\usepackage{fontspec}\\setmainfont{DejaVu Serif}"
                     "\\begin{document}x\\end{document}\n")
    with pytest.raises(export.BuildError, match='The font "DejaVu Serif" cannot'):
        export.run_latexmk(probe)
    found = subprocess.run(["kpsewhich", "DejaVuSerif.ttf"], capture_output=True, text=True).stdout.strip()
    assert not found.startswith("/usr/share/fonts"), found

    theory = export.Part("Part I: Theory", export.theory_pdf(tmp_path / "theory"))
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Fonts\n**bold** *italic* ***both*** `code` λ σ ≤ ∈ ℝ $\\sum_i x_i^2$"),
        nbformat.v4.new_code_cell("print('λ ± ‖x‖')", outputs=[
            nbformat.v4.new_output("stream", name="stdout", text="λ ± ‖x‖\n")]),
    ])
    notebook = export.Part("Part II: Notebook", export.notebook_pdf(nb, tmp_path / "notebook"))
    appendix = export.Part("Part III: Appendix", export.appendix_pdf(["lse"], tmp_path / "appendix"))
    parts = [theory, notebook, appendix]
    for part in parts:
        part.entries = export.outline_entries(part.pdf)
    pdf = export.assemble(parts, ["Ada Lovelace", "Alan Turing"], tmp_path / AWKWARD_DIR / "assembled")
    fonts = pdffonts(pdf)
    for face in ["DejaVuSerif", "DejaVuSerif-Bold", "DejaVuSerif-Italic", "DejaVuSerif-BoldItalic",
                 "DejaVuSans-Bold", "DejaVuSansMono", "LatinModernMath-Regular", "LMRoman10-Regular"]:
        assert re.search(rf"\+{face}\b", fonts), face


def test_merge_at_a_path_with_tex_special_characters(tmp_path):
    """#, % and ~ (and a space, an umlaut) in the path of the parts do not reach LaTeX."""
    folder = tmp_path / AWKWARD_DIR
    folder.mkdir()
    tex = folder / "part.tex"
    tex.write_text("\\documentclass{article}\\usepackage{hyperref}\\begin{document}"
                   "\\section{Exercise 1}Hello.\\end{document}\n")
    part = export.Part("Part I: Theory", export.run_latexmk(tex))
    part.entries = export.outline_entries(part.pdf)
    pdf = export.assemble([part], ["Ada Lovelace", "Alan Turing"], folder / "assembled")
    source = (folder / "assembled" / "submission.tex").read_text()
    assert "Part I: Theory" in source and str(tmp_path) not in source  # the parts are merged by pypdf
    assert pdf.is_file()


# --------------------------------------------------------------------------- a ZIP download


def test_download_zip_copy_without_git(tmp_path, course_data):
    """A copy without .git (GitHub's "Download ZIP"): the tests' own copying works without
    git (a `git` that fails is first on the PATH), and so does the set-up."""
    require_set_up_venv()
    zip_copy = copy_of_repo(tmp_path / "unzipped", use_git=False)
    assert not (zip_copy / ".git").exists() and (zip_copy / "sheet05" / "setup.py").is_file()
    assert not (zip_copy / "build").exists() and not (zip_copy / "submission.pdf").exists()
    if is_git_checkout():
        assert sorted(working_files(REPO, use_git=True)) == sorted(working_files(REPO, use_git=False))
    (zip_copy / "data" / "lie_detection").symlink_to(course_data)
    nogit = tmp_path / "nogit"
    nogit.mkdir()
    (nogit / "git").write_text("#!/bin/sh\necho 'git: not a git repository' >&2\nexit 128\n")
    (nogit / "git").chmod(0o755)
    env = dict(os.environ, PATH=f"{nogit}{os.pathsep}{os.environ['PATH']}")

    # what the slow tests do first: copy the repository (here: the ZIP copy) elsewhere
    code = ("import sys; from pathlib import Path; sys.path.insert(0, 'tests'); import conftest; "
            "print(len(conftest.working_files())); conftest.copy_of_repo(Path(sys.argv[1]))")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "second")], cwd=zip_copy, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "second" / "export.sh").is_file() and (tmp_path / "second" / ".venv").is_symlink()
    assert int(result.stdout) == len(working_files(REPO))

    result = run_export(zip_copy, "--setup-only", env=env)
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------- line endings


def test_scripts_have_lf_line_endings():
    for script in ["export.sh", ".ci/run", "benchmarks/bench.py"]:
        assert b"\r" not in (REPO / script).read_bytes(), script
    rules = (REPO / ".gitattributes").read_text()
    assert "* text=auto eol=lf" in rules and "*.sh text eol=lf" in rules
    for binary in ("*.pdf binary", "*.png binary", "*.pt binary"):
        assert binary in rules


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_clone_with_autocrlf_keeps_lf(tmp_path):
    """A clone made with core.autocrlf=true (Git for Windows' default, as when a WSL user
    clones on the Windows side) still has LF scripts, and ./export.sh runs."""
    origin = copy_of_repo(tmp_path / "origin", link_venv=False)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "init.defaultBranch=main"]
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "snapshot"]):
        subprocess.run(git + cmd, cwd=origin, check=True, capture_output=True)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "-c", "core.autocrlf=true", str(origin), str(clone)], check=True)
    text_files = [p for p in clone.rglob("*") if p.is_file() and ".git" not in p.parts
                  and p.suffix in ("", ".sh", ".py", ".tex", ".j2", ".md", ".txt", ".ini", ".ipynb", ".sha256")]
    assert (clone / "export.sh") in text_files and (clone / ".ci" / "run") in text_files
    crlf = [str(p.relative_to(clone)) for p in text_files if b"\r\n" in p.read_bytes()]
    assert crlf == []
    result = subprocess.run(["./export.sh", "--help"], cwd=clone, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("Usage:")


# --------------------------------------------------------------------------- certificates


def test_certificate_failure_is_named_with_its_fix(tmp_path, monkeypatch):
    """python.org's macOS Python before "Install Certificates": not "Offline?"."""
    def no_certificates(url, timeout=None):
        raise urllib.error.URLError(ssl.SSLCertVerificationError(
            1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer "
               "certificate (_ssl.c:1000)"))

    monkeypatch.setattr(data.urllib.request, "urlopen", no_certificates)
    monkeypatch.delenv("LIE_DETECTION_MIRROR", raising=False)
    with pytest.raises(data.DataError) as err:
        data.fetch(tmp_path, manifest={"datasets/cities.csv": "0" * 64}, log=lambda *_: None)
    message = str(err.value)
    assert "CERTIFICATE_VERIFY_FAILED" in message and "not a network problem" in message
    assert "Install Certificates.command" in message and "SSL_CERT_FILE" in message and "certifi" in message
    assert "Offline?" not in message

    def offline(url, timeout=None):
        raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(data.urllib.request, "urlopen", offline)
    with pytest.raises(data.DataError, match="Offline?"):
        data.fetch(tmp_path, manifest={"datasets/cities.csv": "0" * 64}, log=lambda *_: None)


# --------------------------------------------------------------------------- a normal user


def _python_for_other_users():
    """A supported Python outside /root (pyenv's there is not readable by other users)."""
    supported = setup.SUPPORTED_PYTHONS
    names = [f"python{major}.{minor}" for major, minor in reversed(supported)] + ["python3"]
    for name in names:
        for folder in ("/usr/local/bin", "/usr/bin", "/opt/homebrew/bin"):
            path = Path(folder) / name
            if path.exists():
                ok = subprocess.run([str(path), "-c", f"import sys, ensurepip; sys.exit(not {supported[0]} <= "
                                     f"sys.version_info[:2] <= {supported[-1]})"], capture_output=True).returncode == 0
                if ok:
                    return str(path)
    return None


@pytest.mark.slow
def test_set_up_and_export_as_a_normal_user_with_tex_present(tmp_path, course_data):
    """A throwaway user (no root, no sudo) with its own copy of the repository runs the set-up
    and the export. TeX is there, so nothing may be installed: `apt-get` and `sudo` on its PATH
    only record that they were called. Its .venv starts out broken (its interpreter vanished,
    as after a Homebrew or pyenv upgrade) and must be recreated."""
    if os.geteuid() != 0:
        pytest.skip("creating a throwaway user needs root (CI runs as root)")
    python = _python_for_other_users()
    if python is None:
        message = (f"needs a Python {setup.SUPPORTED_PYTHONS_TEXT} with venv outside /root: "
                   "apt-get install python3 python3-venv")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    user = "sheet05-" + secrets.token_hex(3)
    server = None
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", user], check=True)
    base = Path(tempfile.mkdtemp(prefix="sheet05-user-", dir="/tmp"))
    try:
        home = Path(pwd.getpwnam(user).pw_dir)
        repo = copy_of_repo(base / "Meine Abgabe" / "repo", link_venv=False)
        # the course data: the mirror if the user may read it, else a copy of ours
        mirror = MIRROR if MIRROR and _readable_by_others(Path(MIRROR)) else None
        if mirror is None:
            shutil.copytree(course_data, base / "mirror", symlinks=False)
            mirror = str(base / "mirror")
        # a venv whose interpreter has gone
        (repo / ".venv" / "bin").mkdir(parents=True)
        (repo / ".venv" / "bin" / "python").symlink_to("/opt/homebrew/Cellar/python@3.12/3.12.0/bin/python3.12")
        (repo / ".venv" / "pyvenv.cfg").write_text("home = /opt/homebrew/Cellar/python@3.12/3.12.0/bin\n"
                                                   "version = 3.12.0\n")
        trap = base / "trap"
        trap.mkdir()
        for tool in ("apt-get", "apt", "sudo"):
            (trap / tool).write_text(f"#!/bin/sh\necho \"{tool} $*\" >> {base}/trap.log\nexit 1\n")
            (trap / tool).chmod(0o755)
        subprocess.run(["chown", "-R", f"{user}:", str(base)], check=True)
        os.chmod(base, 0o755)

        env = {"HOME": str(home), "USER": user, "LANG": "C.UTF-8",
               "PATH": f"{trap}:/usr/local/bin:/usr/bin:/bin", "LIE_DETECTION_MIRROR": mirror}
        if "PIP_CERT" in os.environ:  # this machine's pip needs it, and /etc/pip.conf names it anyway
            env["PIP_CERT"] = os.environ["PIP_CERT"]
        # PyTorch's CPU page, played by a local server with a CPU wheel already on this machine
        # (a download saved): the set-up reads the page once and pip takes the wheel from there
        wheels = local_torch_cpu_wheels(python)
        if wheels is not None:
            server = WheelServer(wheels)
            env["TORCH_WHEELS"] = server.url

        def as_user(*args):
            return subprocess.run(["runuser", "-u", user, "--", "env", "-i",
                                   *[f"{k}={v}" for k, v in env.items()], "./export.sh", *args],
                                  cwd=repo, capture_output=True, text=True, timeout=1800)

        setup_run = as_user("--setup-only")
        assert setup_run.returncode == 0, setup_run.stdout[-3000:] + setup_run.stderr[-3000:]
        assert "recreating .venv" in setup_run.stdout and "no longer runs" in setup_run.stdout
        assert "all present" in setup_run.stdout
        assert not (base / "trap.log").exists(), (base / "trap.log").read_text()
        assert (repo / ".venv").stat().st_uid == pwd.getpwnam(user).pw_uid
        assert Path(os.path.realpath(repo / ".venv" / "bin" / "python")).parent == Path(os.path.realpath(python)).parent

        again = as_user("--setup-only")
        assert again.returncode == 0 and ".venv is up to date" in again.stdout

        build = as_user("--authors", "Ada Lovelace", "Alan Turing")
        assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
        assert (repo / "submission.pdf").stat().st_uid == pwd.getpwnam(user).pw_uid
        assert not (base / "trap.log").exists()
        if server is not None:
            assert server.requests.count("/") == 1, server.requests  # once, by the set-up
            assert [r for r in server.requests if r.endswith(".whl")], "pip took torch from the page"
    finally:
        if server is not None:
            server.close()
        subprocess.run(["userdel", "--remove", user], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def local_torch_cpu_wheels(python: str) -> Path | None:
    """A folder on this machine that holds the pinned CPU wheel of torch for `python`: named
    by TORCH_WHEELS or by pip's find-links (environment or configuration); None if there is
    none (then the user's set-up downloads it from PyPI's neighbour, PyTorch's CPU page)."""
    tag = subprocess.run([python, "-c", "import sys; print('cp%d%d' % sys.version_info[:2])"],
                         capture_output=True, text=True).stdout.strip()
    places = [os.environ.get("TORCH_WHEELS", "")] + os.environ.get("PIP_FIND_LINKS", "").split()
    places += setup.pip_settings().get("find-links", "").split()  # pip's configuration, read without pip too
    for place in places:
        folder = Path(place.removeprefix("file://"))
        if place and folder.is_dir() and list(folder.glob(f"torch-{setup.pinned_torch()}-{tag}-*.whl")):
            return folder
    return None


def _readable_by_others(path: Path) -> bool:
    """Whether every folder up to `path` lets others in, and `path` lets them read."""
    for folder in [path, *path.parents]:
        if not folder.stat().st_mode & 0o001:
            return False
    return bool(path.stat().st_mode & 0o004)
