"""export.sh and its set-up (sheet05/setup.py): arguments, interpreter choice and refusal,
platform checks, the .venv decisions, where the CPU build of torch comes from, the TeX check."""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, WheelServer, fake_wheel, python_with_pip
from sheet05 import setup

PYENV_VERSIONS = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"


def pyenv_python(minor: str):
    """An interpreter of version `minor` ('3.10'), from pyenv or the PATH, or None."""
    for candidate in sorted(PYENV_VERSIONS.glob(f"{minor}.*/bin/python{minor}")):
        return str(candidate)
    found = shutil.which(f"python{minor}")
    if found and subprocess.run([found, "-c", ""], capture_output=True).returncode == 0:
        return found
    return None


def minimal_repo(dest: Path) -> Path:
    """What export.sh needs to start: the script, the helper package, requirements.txt."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "export.sh", dest / "export.sh")
    shutil.copy2(REPO / "requirements.txt", dest / "requirements.txt")
    shutil.copytree(REPO / "sheet05", dest / "sheet05", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


# --------------------------------------------------------------------------- the script


def test_help_prints_the_usage_only():
    result = subprocess.run(["./export.sh", "--help"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: ./export.sh")
    assert "set -" not in result.stdout and "#" not in result.stdout
    assert "--setup-only" in result.stdout and "--dry-run" in result.stdout and "TORCH_WHEELS" in result.stdout
    # it fits an 80-column terminal as printed, so no line is wrapped by the terminal
    assert max(len(line) for line in result.stdout.splitlines()) <= 80


def test_export_sh_is_posix_sh():
    script = REPO / "export.sh"
    assert script.read_bytes().startswith(b"#!/bin/sh\n")
    for shell in ("dash", "sh"):
        if shutil.which(shell):
            result = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True)
            assert result.returncode == 0, (shell, result.stderr)
    if shutil.which("shellcheck"):
        result = subprocess.run(["shellcheck", "-s", "sh", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout


def test_supported_pythons_agree_between_script_and_setup():
    text = (REPO / "export.sh").read_text()
    low, high = re.search(r"\(3, (\d+)\) <= sys.version_info\[:2\] <= \(3, (\d+)\)", text).groups()
    assert setup.SUPPORTED_PYTHONS == tuple((3, m) for m in range(int(low), int(high) + 1))


def test_ci_reads_the_apt_packages_from_setup():
    line = re.search(r"sed -n '(.*?)' sheet05/setup.py", (REPO / ".ci" / "run").read_text()).group(1)
    out = subprocess.run(["sed", "-n", line, str(REPO / "sheet05" / "setup.py")], capture_output=True, text=True).stdout
    assert out.split() == setup.APT_PACKAGES.split() and "texlive-xetex" in out and "lmodern" in out
    assert "poppler-utils" not in setup.APT_PACKAGES  # only the tests need it; .ci/run adds it


# --------------------------------------------------------------------------- Python versions


@pytest.mark.parametrize("minor", ["3.10", "3.6", "2.7"])
def test_unsupported_python_is_refused_up_front(tmp_path, minor):
    python = pyenv_python(minor)
    if python is None:
        pytest.skip(f"no Python {minor} on this machine (pyenv install {minor})")
    repo = minimal_repo(tmp_path / "repo")
    start = time.perf_counter()
    result = subprocess.run(["./export.sh", "--setup-only"], cwd=repo, capture_output=True, text=True,
                            env=dict(os.environ, PYTHON=python), timeout=60)
    assert result.returncode == 1
    assert f"Python {minor} is not supported" in result.stderr
    assert "3.11, 3.12, 3.13 or 3.14" in result.stderr and "PYTHON=python3.11 ./export.sh" in result.stderr
    # the true reason: the packages, and the wheel they lack
    assert "numpy 2.4.6 and scipy 1.17.1" in result.stderr and f"no wheel for Python {minor}" in result.stderr
    assert "Traceback" not in result.stderr and "SyntaxError" not in result.stderr
    assert not (repo / ".venv").exists(), "nothing may be created before the refusal"
    assert time.perf_counter() - start < 20


@pytest.mark.parametrize("version, expected", [
    ((3, 14, 0), None),
    ((3, 11, 7), None),
    ((3, 10, 12), "numpy 2.4.6 and scipy 1.17.1, pinned in requirements.txt, need Python 3.11 or newer:\n"
                  "  they have no wheel for Python 3.10 (cp310)"),
    ((3, 15, 0), "have no wheel for Python 3.15 (cp315) yet"),
])
def test_python_checks_accept_314_and_name_the_missing_wheels(version, expected):
    problem = setup.python_problem(version)
    if expected is None:
        assert problem is None
    else:
        assert expected in problem and "Supported: Python 3.11, 3.12, 3.13 or 3.14." in problem
        assert "torch 2.13.0 need" not in problem  # torch 2.13 has cp310 wheels: it is not the reason


def _fake_bin(folder: Path, pythons: dict) -> str:
    """A PATH with the given python names (name -> interpreter) and the few tools sh needs."""
    folder.mkdir()
    for tool in ("dirname",):
        (folder / tool).symlink_to(shutil.which(tool))
    for name, target in pythons.items():
        (folder / name).symlink_to(target)
    return str(folder)


def test_interpreter_choice(tmp_path):
    py310, py312 = pyenv_python("3.10"), pyenv_python("3.12")
    if not (py310 and py312):
        pytest.skip("needs Python 3.10 and 3.12 (pyenv install 3.10 3.12)")
    # a stand-in for the set-up that only says which interpreter export.sh chose
    repo = tmp_path / "repo"
    (repo / "sheet05").mkdir(parents=True)
    shutil.copy2(REPO / "export.sh", repo)
    (repo / "sheet05" / "__init__.py").write_text("")
    (repo / "sheet05" / "setup.py").write_text("import sys\nprint('%d.%d' % sys.version_info[:2])\n")

    def chosen(pythons, **env):
        path = _fake_bin(tmp_path / f"bin{len(list(tmp_path.iterdir()))}", pythons)
        result = subprocess.run(["/bin/sh", "./export.sh"], cwd=repo, capture_output=True, text=True,
                                env={"PATH": path, "HOME": str(tmp_path), **env})
        return result.returncode, result.stdout.strip(), result.stderr

    # python3 is 3.10 (Ubuntu 22.04), python3.12 is installed beside it: 3.12 is taken
    assert chosen({"python3": py310, "python3.12": py312})[:2] == (0, "3.12")
    # only an unsupported python3: it is handed over so that it can explain (see the test above)
    assert chosen({"python3": py310})[:2] == (0, "3.10")
    # PYTHON wins, even when another one would be supported
    assert chosen({"python3": py312, "python3.10": py310}, PYTHON="python3.10")[:2] == (0, "3.10")
    rc, _, err = chosen({}, PYTHON="python3.99")
    assert rc == 1 and "PYTHON=python3.99: no such command" in err
    # a pyenv shim of a version that is installed but not selected
    shim = tmp_path / "shim"
    shim.write_text("#!/bin/sh\necho 'pyenv: python3.10: command not found' >&2\nexit 127\n")
    shim.chmod(0o755)
    rc, _, err = chosen({"python3.10": str(shim)}, PYTHON="python3.10")
    assert rc == 1 and "command not found" in err and "python3.10 does not run" in err
    rc, _, err = chosen({})
    assert rc == 1 and "no Python found" in err and "apt-get install python3 python3-venv" in err
    # Git Bash on Windows (not WSL): told to use WSL2 before any Python is looked for
    uname = tmp_path / "uname"
    uname.write_text("#!/bin/sh\necho MINGW64_NT-10.0-19045\n")
    uname.chmod(0o755)
    rc, out, err = chosen({"uname": str(uname), "python3": py312})
    assert rc == 1 and out == "" and "WSL2" in err and "wsl --install" in err


# --------------------------------------------------------------------------- platforms


@pytest.mark.parametrize("args, expected", [
    (("linux", "x86_64", "", ("glibc", "2.36")), None),
    (("linux", "aarch64", "", ("glibc", "2.31")), None),
    (("darwin", "arm64", "14.5", None), None),
    (("darwin", "arm64", "15.0", None), None),
    (("darwin", "x86_64", "14.5", None), "macOS on Intel (x86_64) is not supported"),
    (("darwin", "arm64", "13.6.1", None), "macOS 13.6.1 is too old"),
    (("linux", "x86_64", "", ("glibc", "2.17")), "glibc 2.17 is too old"),
    (("linux", "x86_64", "", ("", "")), "no glibc"),
    (("linux", "riscv64", "", ("glibc", "2.36")), "Linux on riscv64 is not supported"),
    (("win32", "AMD64", "", None), "WSL2"),
    (("cygwin", "x86_64", "", None), "WSL2"),
    (("freebsd14", "amd64", "", None), "freebsd14 is not supported"),
])
def test_platform_checks(args, expected):
    problem = setup.platform_problem(*args)
    if expected is None:
        assert problem is None
    else:
        assert expected in problem and "Supported: Linux on x86_64 or aarch64" in problem


def test_rosetta_python_is_told_to_use_an_arm64_python():
    problem = setup.platform_problem("darwin", "x86_64", "14.5", None, rosetta=True)
    assert "Rosetta" in problem and "/opt/homebrew/bin/python3.12" in problem


def test_this_machine_is_supported():
    assert setup.this_platform_problem() is None


# --------------------------------------------------------------------------- .venv decisions

ME = {"version": "3.12.1", "executable": "/usr/bin/python3.12"}
REQ = "a" * 64
STAMP = {"requirements_sha256": REQ, "python_version": "3.12.1", "created_with": "/usr/bin/python3.12"}


@pytest.mark.parametrize("exists, probe, stamp, explicit, action, reason", [
    (False, None, None, False, "create", "no .venv yet"),
    (True, None, STAMP, False, "recreate", "no longer runs"),
    (True, {"version": "3.10.12", "executable": "/usr/bin/python3.10"}, STAMP, False, "recreate", "3.10.12"),
    (True, ME, STAMP, False, "ok", "3.12.1"),
    (True, ME, dict(STAMP, requirements_sha256="b" * 64), False, "install", "requirements.txt changed"),
    (True, ME, None, False, "install", "no record"),  # e.g. the stamp of an older export.sh
    # another interpreter runs the set-up: the working .venv is kept ...
    (True, {"version": "3.11.7", "executable": "/usr/bin/python3.11"},
     dict(STAMP, python_version="3.11.7", created_with="/usr/bin/python3.11"), False, "ok", "3.11.7"),
    # ... unless PYTHON names it
    (True, {"version": "3.11.7", "executable": "/usr/bin/python3.11"},
     dict(STAMP, python_version="3.11.7", created_with="/usr/bin/python3.11"), True, "recreate", "PYTHON names"),
    (True, ME, dict(STAMP, created_with="/opt/other/python3.12"), True, "recreate", "PYTHON names"),
    (True, ME, STAMP, True, "ok", "3.12.1"),
])
def test_venv_plan(exists, probe, stamp, explicit, action, reason):
    got_action, got_reason = setup.plan_venv(exists, probe, stamp, REQ, ME, explicit)
    assert got_action == action and reason in got_reason


@pytest.mark.parametrize("has_ensurepip", [False, True])
def test_venv_advice_names_python3_venv_only_when_ensurepip_is_missing(monkeypatch, has_ensurepip):
    failed = subprocess.CompletedProcess([], 1, "", "Error: Command '[...]' returned non-zero exit status 1.")
    monkeypatch.setattr(setup.subprocess, "run", lambda *a, **k: failed)
    monkeypatch.setattr(setup, "is_debian_like", lambda: True)
    monkeypatch.setattr(setup, "is_root", lambda: False)
    if not has_ensurepip:
        monkeypatch.setitem(sys.modules, "ensurepip", None)  # importing it fails, as on Debian without it
    with pytest.raises(setup.SetupError) as err:
        setup.create_venv(clear=False)
    package = "python%d.%d-venv" % sys.version_info[:2]
    assert (f"sudo apt-get install {package}" in str(err.value)) == (not has_ensurepip)
    if has_ensurepip:
        assert "PYTHON=python3.12 ./export.sh" in str(err.value)


def test_probe_sees_a_python_310_venv_and_a_vanished_interpreter(tmp_path):
    """The two cases of the issue, with real venvs: an old 3.10 .venv (kept by `venv` without
    --clear) and one whose interpreter was removed by a Homebrew or pyenv upgrade."""
    py310 = pyenv_python("3.10")
    if py310 is None:
        pytest.skip("needs Python 3.10")
    old = tmp_path / "old"
    subprocess.run([py310, "-m", "venv", "--without-pip", str(old)], check=True)
    probe = setup.probe_venv(str(old))
    assert probe["version"].startswith("3.10.")
    assert setup.plan_venv(True, probe, None, REQ, ME, False)[0] == "recreate"

    gone = tmp_path / "gone"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(gone)], check=True)
    for name in ("python", "python3"):
        (gone / "bin" / name).unlink()
        (gone / "bin" / name).symlink_to(tmp_path / "uninstalled" / "python3.12")
    assert os.path.lexists(setup.venv_python(str(gone)))
    assert setup.probe_venv(str(gone)) is None
    assert setup.plan_venv(True, None, STAMP, REQ, ME, False)[0] == "recreate"


# --------------------------------------------------------------------------- torch, CPU build


@pytest.mark.cpu_lock
def test_requirements_pin_the_cpu_build():
    """requirements.in, edited by hand: the CPU build on Linux, PyPI's (CPU) build elsewhere,
    Windows included. The lock (requirements.txt) is checked in test_lock.py."""
    text = (REPO / "requirements.in").read_text()
    assert re.search(r'^torch==2\.13\.0\+cpu ; sys_platform == "linux"$', text, re.M)
    assert re.search(r'^torch==2\.13\.0 ; sys_platform != "linux"$', text, re.M)
    assert setup.pinned_torch() == "2.13.0+cpu"
    assert "--extra-index-url" not in text and "--index-url" not in text


def test_torch_page_is_rewritten_with_absolute_links():
    page = ('<html><body><h1>Links for torch</h1>\n'
            '<a href="/whl/cpu/torch-2.13.0%2Bcpu-cp311-cp311-manylinux_2_28_x86_64.whl#sha256=ab12" '
            'data-requires-python="&gt;=3.10" data-dist-info-metadata="sha256=cd34">'
            'torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl</a><br/>\n'
            '<a href="../numpy-2.4.6-cp311-none-any.whl">numpy</a>\n</body></html>')
    out, names = setup.torch_links_page(page, "https://example.org/whl/cpu/torch/")
    assert names == ["torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"]
    assert ('href="https://example.org/whl/cpu/torch-2.13.0%2Bcpu-cp311-cp311-manylinux_2_28_x86_64.whl'
            '#sha256=ab12"') in out
    assert 'data-requires-python="&gt;=3.10"' in out and 'data-dist-info-metadata="sha256=cd34"' in out
    assert "numpy" not in out


def test_torch_wheels_folder_and_file_go_to_pip_as_they_are(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("TORCH_WHEELS", str(tmp_path))
    assert setup.torch_find_links(str(tmp_path))[0] == ["--find-links", str(tmp_path)]
    monkeypatch.setenv("TORCH_WHEELS", str(tmp_path / "nowhere"))
    with pytest.raises(setup.SetupError, match="no such folder"):
        setup.torch_find_links(str(tmp_path))
    monkeypatch.setattr(sys, "platform", "darwin")  # PyPI's macOS wheel is the CPU build
    assert setup.torch_find_links(str(tmp_path))[0] == []


@pytest.mark.cpu_lock
def test_unreachable_torch_page_costs_one_try_not_one_per_package(tmp_path, monkeypatch):
    """A page that cannot be fetched is left out after one try and one retry (seconds), and
    the error, should pip then find no torch, names the page and the override."""
    monkeypatch.setattr(sys, "platform", "linux")
    import socket

    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("TORCH_WHEELS", f"http://127.0.0.1:{port}/whl/cpu/torch/")
    notes = []
    start = time.perf_counter()
    args, source, note = setup.torch_find_links(str(tmp_path), log=notes.append)
    assert time.perf_counter() - start < 10
    assert args == [] and f"could not read http://127.0.0.1:{port}/" in notes[0] and "refused" in note
    message = setup.torch_error(source, note)
    assert "torch==2.13.0+cpu" in message and f"TORCH_WHEELS=http://127.0.0.1:{port}" in message
    assert "TORCH_WHEELS=/path/to/that/folder ./export.sh" in message and "download.pytorch.org" in message


@pytest.mark.parametrize("log", [
    "ERROR: Could not find a version that satisfies the requirement torch==2.13.0+cpu (from versions: none)\n"
    "ERROR: No matching distribution found for torch==2.13.0+cpu\n",
    # pip's answer when a constraint (here: this machine's torch<=2.14.1) names torch too
    "ERROR: Cannot install torch==2.13.0+cpu because these package versions have conflicting dependencies.\n"
    "Additionally, some packages in these conflicts have no matching distributions available for your "
    "environment:\n    torch\n",
])
def test_pip_finding_no_torch_is_recognised(tmp_path, log):
    (tmp_path / "pip.log").write_text("Collecting numpy==2.4.6\n" + log)
    assert setup._torch_missing(str(tmp_path / "pip.log"))
    (tmp_path / "other.log").write_text("ERROR: No matching distribution found for numpy==2.4.6\n")
    assert not setup._torch_missing(str(tmp_path / "other.log"))


def test_torch_page_fetch_retries_once_except_when_the_name_does_not_resolve(tmp_path, monkeypatch):
    import socket
    import urllib.error

    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(setup.time, "sleep", lambda s: None)
    monkeypatch.setenv("TORCH_WHEELS", "https://wheels.example.org/cpu/torch/")
    page = '<a href="torch-2.13.0%2Bcpu-cp311-cp311-manylinux_2_28_x86_64.whl">t</a>'
    calls = []

    def flaky(url, timeout):
        calls.append(url)
        if len(calls) == 1:
            raise urllib.error.URLError(ConnectionResetError(104, "Connection reset by peer"))
        return page, url

    monkeypatch.setattr(setup, "_fetch_text", flaky)
    args, _, note = setup.torch_find_links(str(tmp_path), log=lambda *_: None)
    assert len(calls) == 2 and note is None and args[0] == "--find-links"
    assert "https://wheels.example.org/cpu/torch/torch-2.13.0%2Bcpu" in Path(args[1]).read_text()

    calls.clear()

    def offline(url, timeout):
        calls.append(url)
        raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))

    monkeypatch.setattr(setup, "_fetch_text", offline)
    args, _, note = setup.torch_find_links(str(tmp_path), log=lambda *_: None)
    assert len(calls) == 1 and args == [] and "Name or service not known" in note


def isolated_pip_env(**extra) -> dict:
    """This machine's pip settings removed: no config file (/etc/pip.conf adds find-links
    /opt/wheels, which holds a real torch +cpu wheel), no PIP_FIND_LINKS, no extra index."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX", "PIP_CONSTRAINT")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env.update(extra)
    return env


def test_pip_fetches_a_remote_find_links_page_once_per_package(tmp_path):
    """Why the set-up fetches TORCH_WHEELS itself: pip reads a remote find-links page again for
    every package it looks up (so an unreachable one costs ~8 s of retries per package)."""
    wheels = tmp_path / "wheels"
    for name in ("alpha", "beta", "gamma"):
        fake_wheel(wheels, name, "1.0")
    server = WheelServer(wheels)
    try:
        result = subprocess.run([python_with_pip(tmp_path / "venv"), "-m", "pip", "download", "--no-index", "--no-deps", "-d",
                                 str(tmp_path / "dl"), "--find-links", server.url, "alpha", "beta", "gamma"],
                                capture_output=True, text=True, env=isolated_pip_env(), timeout=120)
    finally:
        server.close()
    assert result.returncode == 0, result.stderr
    assert server.requests.count("/") == 3


# The CPU-torch dry run (./export.sh --setup-only --dry-run against stand-ins for PyPI and for
# PyTorch's CPU page) is test_lock.test_real_lock_resolves_to_torch_cpu_with_pip_and_uv.


# --------------------------------------------------------------------------- installers


def test_installer_is_uv_when_on_the_path_else_pip(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    assert setup.which_installer("create", {"PATH": str(bin_dir)})[:2] == ("pip", None)
    (bin_dir / "uv").write_text("#!/bin/sh\n")
    (bin_dir / "uv").chmod(0o755)
    assert setup.which_installer("create", {"PATH": str(bin_dir)}) == ("uv", str(bin_dir / "uv"), "uv is on the PATH")
    assert setup.which_installer("create", {"PATH": str(bin_dir), "INSTALLER": "pip"})[0] == "pip"
    with pytest.raises(setup.SetupError, match="INSTALLER=uv, but uv is not on the PATH"):
        setup.which_installer("create", {"PATH": str(tmp_path), "INSTALLER": "uv"})
    with pytest.raises(setup.SetupError, match="INSTALLER=conda"):
        setup.which_installer("create", {"PATH": str(tmp_path), "INSTALLER": "conda"})


def test_uv_gets_pips_indexes_and_find_links(tmp_path):
    """A university mirror in pip's configuration (file and environment) reaches uv."""
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nindex-url = https://mirror.example.org/pypi/simple\n"
                    "extra-index-url = https://extra.example.org/simple\n  https://more.example.org/simple\n"
                    "trusted-host = mirror.example.org\n[install]\nfind-links = /srv/wheels\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    settings = setup.pip_settings(env=dict(env, PIP_CONFIG_FILE=str(conf), PIP_FIND_LINKS="/opt/w1 /opt/w2"))
    assert setup.uv_mirror_of_pip(settings) == [
        "--index-url", "https://mirror.example.org/pypi/simple",
        "--extra-index-url", "https://extra.example.org/simple", "--extra-index-url", "https://more.example.org/simple",
        "--find-links", "/opt/w1", "--find-links", "/opt/w2",  # the environment wins over the file
        "--allow-insecure-host", "mirror.example.org", "--index-strategy", "unsafe-best-match"]
    assert setup.uv_mirror_of_pip(setup.pip_settings(env=dict(env, PIP_CONFIG_FILE=os.devnull))) == []
    # without pip (Debian's python3 has none), the files are read directly, with the same result
    without_pip = setup._pip_settings_from_files(dict(env, PIP_CONFIG_FILE=str(conf), PIP_FIND_LINKS="/opt/w1 /opt/w2",
                                                      HOME=str(tmp_path), XDG_CONFIG_DIRS=str(tmp_path / "none")))
    assert setup.uv_mirror_of_pip(without_pip) == setup.uv_mirror_of_pip(settings)


def test_a_venv_without_pip_gets_pip_from_ensurepip(tmp_path):
    """A .venv made by `uv venv` has no pip: with pip as the installer, the set-up adds it
    (from the standard library, no network) instead of failing."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    assert setup.pip_version(python) == ()
    assert setup.ensure_pip(python, str(tmp_path / "log")) is True
    assert setup.pip_version(python) >= setup.PIP_MINIMUM


@pytest.mark.cpu_lock
def test_torch_from_a_local_folder_drops_the_locks_page(tmp_path, monkeypatch):
    """With torch's wheel in one of pip's find-links (or TORCH_WHEELS), the installers get a
    copy of requirements.txt without the page: uv would take the page's link over a local
    file, and fail without access to PyTorch's server. The hashes stay."""
    monkeypatch.setattr(sys, "platform", "linux")
    name = setup.torch_wheel_name_for_this_machine(setup.pinned_torch())
    (tmp_path / "wheels").mkdir()
    assert setup.local_torch_folder({"find-links": str(tmp_path / "wheels")}) is None
    (tmp_path / "wheels" / name).write_bytes(b"")
    assert setup.local_torch_folder({"find-links": "/nowhere " + str(tmp_path / "wheels")}) == str(tmp_path / "wheels")
    assert setup.requirements_for([], str(tmp_path)) == setup.REQUIREMENTS
    copy = Path(setup.requirements_for(["--find-links", str(tmp_path / "wheels")], str(tmp_path)))
    original = (REPO / "requirements.txt").read_text()
    assert "--find-links torch-cpu-wheels.html\n" in original
    assert copy.read_text() == original.replace("--find-links torch-cpu-wheels.html\n", "")


@pytest.mark.parametrize("log, tool", [
    ("ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE. If you have updated the package "
     "versions, please update the hashes. Otherwise, examine the package contents carefully; someone may have "
     "tampered with them.\n    torch==2.13.0+cpu from http://127.0.0.1:1/torch-2.13.0%2Bcpu-cp311-cp311-"
     "manylinux_2_28_x86_64.whl (from -r requirements.txt (line 1)):\n        Expected sha256 aa\n"
     "             Got        bb\n", "pip"),
    ("error: Failed to download `torch==2.13.0+cpu`\n  Caused by: Hash mismatch for `torch==2.13.0+cpu`\n\n"
     "Expected:\n  sha256:aa\n\nComputed:\n  sha256:bb\n", "uv"),
])
def test_hash_mismatch_names_the_package(tmp_path, log, tool):
    (tmp_path / "log").write_text(log)
    message = setup.install_failure(tool, str(tmp_path / "log"), None, None)
    assert message.startswith(f"{tool} refused torch==2.13.0+cpu: the downloaded file does not match its SHA-256")


def test_missing_wheel_names_the_package_and_the_wheel(tmp_path):
    (tmp_path / "log").write_text("ERROR: Could not find a version that satisfies the requirement numpy==2.4.6\n"
                                  "ERROR: No matching distribution found for numpy==2.4.6\n")
    message = setup.install_failure("pip", str(tmp_path / "log"), None, None)
    assert "found no wheel to install for numpy==2.4.6 (no wheel for Python %d.%d (cp%d%d)" % (
        sys.version_info[:2] * 2) in message


# --------------------------------------------------------------------------- TeX


def test_tex_check_finds_everything_here():
    assert setup.missing_tex() == []


def test_tex_advice_per_platform(monkeypatch):
    missing = ["pandoc", "latinmodern-math.otf", "tcolorbox.sty"]
    monkeypatch.setattr(sys, "platform", "darwin")
    mac = setup.tex_advice(missing)
    assert "brew install --cask mactex-no-gui" in mac and "brew install pandoc" in mac and "apt" not in mac
    assert "sudo tlmgr install lm-math tcolorbox" in mac
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(setup, "is_debian_like", lambda: True)
    debian = setup.tex_advice(missing)
    assert "sudo apt-get update && sudo apt-get install -y --no-install-recommends " + setup.APT_PACKAGES in debian
    monkeypatch.setattr(setup, "is_debian_like", lambda: False)
    for tool, command in [("dnf", "sudo dnf install " + setup.DNF_PACKAGES),
                          ("pacman", "sudo pacman -S --needed " + setup.PACMAN_PACKAGES)]:
        monkeypatch.setattr(shutil, "which", lambda name, tool=tool: f"/usr/bin/{name}" if name == tool else None)
        advice = setup.tex_advice(missing)
        assert command in advice and "apt-get" not in advice, advice
    monkeypatch.setattr(shutil, "which", lambda name: None)
    other = setup.tex_advice(missing)
    assert "tlmgr install lm-math tcolorbox" in other and "apt-get" not in other and "dnf" not in other
    assert "pandoc.org" in other


def test_package_lists_cover_the_same_parts():
    """Each distribution's list brings XeTeX, latexmk, pandoc, the LaTeX collections the build
    needs and Latin Modern, and none brings DejaVu from the system (it comes from .venv)."""
    for packages in (setup.APT_PACKAGES, setup.DNF_PACKAGES, setup.PACMAN_PACKAGES):
        words = packages.split()
        assert len(words) == len(set(words))
        assert not [w for w in words if "dejavu" in w]
        for part in ("xetex", "latex-?recommended", "latex-?extra", "fonts-?recommended", "plain-?generic",
                     "pandoc"):
            assert any(re.search(part, w) for w in words), (part, packages)
    assert "latexmk" in setup.APT_PACKAGES.split() and "latexmk" in setup.DNF_PACKAGES.split()
    assert "texlive-binextra" in setup.PACMAN_PACKAGES.split()  # Arch's latexmk


def test_dejavu_comes_from_matplotlib_in_the_venv(tmp_path, monkeypatch):
    assert setup.missing_dejavu() == []  # this .venv
    assert setup.missing_dejavu(str(tmp_path / "novenv")) == list(setup.DEJAVU_FILES)
    from sheet05 import export
    assert setup.DEJAVU_FILES == export.DEJAVU_FILES
    monkeypatch.setattr(setup, "missing_dejavu", lambda: ["DejaVuSerif.ttf"])
    with pytest.raises(setup.SetupError, match=r"DejaVuSerif.ttf.*rm -rf .venv"):
        setup.step_tex()


def test_missing_tex_as_a_normal_user_prints_the_command_and_installs_nothing(monkeypatch, capsys):
    monkeypatch.setattr(setup, "missing_tex", lambda: ["xelatex", "latinmodern-math.otf"])
    monkeypatch.setattr(setup, "is_root", lambda: False)
    monkeypatch.setattr(setup, "is_debian_like", lambda: True)
    monkeypatch.setattr(setup, "apt_install", lambda packages: pytest.fail("apt-get as a normal user"))
    monkeypatch.setattr(sys, "platform", "linux")
    with pytest.raises(setup.SetupError, match="sudo apt-get install") as err:
        setup.step_tex()
    assert "xelatex, latinmodern-math.otf" in str(err.value)


# --------------------------------------------------------------------------- README


def test_readme_commands_match_the_scripts():
    readme = (REPO / "README.md").read_text()
    test_command = "./export.sh --setup-only && .venv/bin/python -m pytest"
    assert test_command in readme
    first_block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1)
    assert first_block.splitlines()[0].split("#")[0].strip() == "./export.sh"   # names come from authors.txt
    assert (REPO / ".ci" / "run").read_text().rstrip().endswith(test_command)
    apt = re.search(r"sudo apt-get install -y --no-install-recommends ([^`]*?)\n```", readme, re.S).group(1)
    assert apt.replace("\\\n", " ").split() == ["python3", "python3-venv", *setup.APT_PACKAGES.split(), "poppler-utils"]
    # Fedora's and Arch's commands name the same packages as the advice of export.sh
    words = " ".join(readme.replace("\\\n", " ").split())
    assert re.search(r"sudo dnf install [\w .-]*" + re.escape(setup.DNF_PACKAGES), words)
    assert re.search(r"sudo pacman -S --needed [\w .-]*" + re.escape(setup.PACMAN_PACKAGES), words)
    for text in ("brew install --cask mactex-no-gui", "brew install pandoc", "TORCH_WHEELS",
                 "--setup-only --dry-run", "3.11, 3.12, 3.13 or 3.14", "350 MB",
                 "uv venv", "uv pip install -r requirements.txt", "python3 -m venv .venv",
                 ".venv/bin/pip install -r requirements.txt", "py -m venv .venv",
                 ".venv\\Scripts\\pip install -r requirements.txt", "WSL2", "python -m sheet05.lock"):
        assert text in readme, text


def test_readme_first_screen_is_for_a_student():
    """What it is, the commands, where the PDF lands, the names, how long each step takes,
    all within the first 45 lines; nothing about how the project was made."""
    readme = (REPO / "README.md").read_text()
    first = "\n".join(readme.splitlines()[:45])
    for text in ["./export.sh ", "./export.sh --setup-only && .venv/bin/python -m pytest", "submission.pdf",
                 "authors.txt", "First Member", "--draft", "| step | time |", "Installation"]:
        assert text in first, text
    assert len(re.findall(r"^\| .* \| .*\d.* \|$", first, re.M)) >= 4   # measured durations
    for section in ["## Working in the notebook", "JupyterLab", "VS Code", "Select Kernel", "Windows", "## Installation"]:
        assert section in readme, section
    assert not re.search(r"\bissues?\b|closing note|\bsession\b", readme, re.I)
