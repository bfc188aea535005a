"""What ./export.sh runs: set-up (steps 1-3) and the build (steps 4-7). Standard library only.

``export.sh`` only picks a Python interpreter and runs ``python -m sheet05.setup ARGS`` from
the repository root. This module then

0. refuses, before touching anything, a Python or a platform that the pinned wheels do not
   support, and says what is supported;
1. keeps ``.venv`` in step with ``requirements.txt`` and the interpreter: installs again when
   requirements.txt changed, and recreates it (``venv --clear``) when its interpreter no
   longer runs (a Homebrew or pyenv upgrade), is an unsupported version, or differs from
   the one that ``PYTHON`` names. On Linux, torch is the CPU build, taken from one wheel page
   (``TORCH_WHEELS``, default PyTorch's CPU page), which is fetched here once and handed to
   pip as a local file: pip would fetch a remote find-links page again for every package,
   and on a machine that cannot reach it would spend about 8 s of retries on each;
2. checks the TeX toolchain with kpsewhich (font files by name, as XeTeX loads them: no
   fontconfig, no poppler) and the DejaVu fonts that matplotlib ships in .venv (the build
   loads them from there, so they do not depend on the OS), and says how to install what is
   missing on this platform (apt-get, dnf, pacman, Homebrew or tlmgr); as root on
   Debian/Ubuntu it installs it with apt-get;
3. fetches and verifies the course data (``sheet05.data``);
4.-7. runs ``sheet05.export`` (notebook, PDFs, assembly) with the virtual environment.

The module has to parse and run on old Pythons (3.6 and newer) far enough to refuse them
clearly: no annotations, no walrus, no f-string ``=``, nothing newer at the top level.
"""

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, ".venv")
REQUIREMENTS = os.path.join(ROOT, "requirements.txt")
STAMP = os.path.join(VENV, ".sheet05-setup.json")
PIP_LOG = os.path.join(VENV, "pip.log")
DRY_RUN_REPORT = os.path.join(ROOT, "build", "setup-dry-run.json")
TOTAL = 7

SUPPORTED_PYTHONS = ((3, 11), (3, 12), (3, 13))  # export.sh has the same range
TORCH_WHEELS_DEFAULT = "https://download.pytorch.org/whl/cpu/torch/"
SUPPORTED_PLATFORMS = (
    "Linux on x86_64 or aarch64 with glibc 2.28 or newer (Debian 10+, Ubuntu 20.04+, "
    "Fedora, WSL2 on Windows, ...) and macOS 14 or newer on Apple Silicon (arm64)"
)

# Debian/Ubuntu packages of the TeX toolchain: XeLaTeX, latexmk, the LaTeX packages that
# nbconvert's template and pdfpages need, pandoc (nbconvert's markdown) and Latin Modern with
# its maths font (lmodern, texlive-fonts-recommended). The DejaVu fonts are matplotlib's, in
# .venv. .ci/run reads this line.
APT_PACKAGES = "texlive-xetex texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended texlive-plain-generic lmodern latexmk pandoc"
# The same for Fedora (TeX Live's collections as packages) and Arch Linux (latexmk is in
# texlive-binextra, Latin Modern and its maths font in texlive-fontsrecommended).
DNF_PACKAGES = ("texlive-collection-xetex texlive-collection-latexrecommended texlive-collection-latexextra "
                "texlive-collection-fontsrecommended texlive-collection-plaingeneric latexmk pandoc")
PACMAN_PACKAGES = ("texlive-xetex texlive-latexrecommended texlive-latexextra texlive-fontsrecommended "
                   "texlive-plaingeneric texlive-binextra pandoc-cli")

TEX_COMMANDS = ("xelatex", "latexmk", "pandoc", "kpsewhich")
# Files that the build loads, each with the TeX Live package that has it (for tlmgr).
TEX_FILES = (
    ("fontspec.sty", "fontspec"), ("unicode-math.sty", "unicode-math"),
    ("tcolorbox.sty", "tcolorbox"), ("adjustbox.sty", "adjustbox"), ("pdfpages.sty", "pdfpages"),
    ("fvextra.sty", "fvextra"), ("titling.sty", "titling"), ("enumitem.sty", "enumitem"),
    ("soul.sty", "soul"), ("ulem.sty", "ulem"), ("eurosym.sty", "eurosym"),
    ("upquote.sty", "upquote"), ("mathrsfs.sty", "jknapltx"), ("parskip.sty", "parskip"),
    ("refcount.sty", "refcount"), ("booktabs.sty", "booktabs"), ("longtable.sty", "tools"),
    # TeX Live's fonts, by the file names that theory.tex, the notebook template and export.py
    # load (DejaVu is not among them: it comes from matplotlib, see DEJAVU_FILES)
    ("latinmodern-math.otf", "lm-math"),
    ("lmroman10-regular.otf", "lm"),
)
# The DejaVu files the build loads from matplotlib's copy in .venv (sheet05/export.py).
DEJAVU_FILES = tuple("%s%s.ttf" % (name, face) for name, slant in
                     (("DejaVuSerif", "Italic"), ("DejaVuSans", "Oblique"), ("DejaVuSansMono", "Oblique"))
                     for face in ("", "-Bold", "-" + slant, "-Bold" + slant))
TLMGR_COMMANDS = {"xelatex": "xetex", "latexmk": "latexmk"}
MACTEX_BIN = "/Library/TeX/texbin"

USAGE_HINT = "(try ./export.sh --help)"


class SetupError(Exception):
    """A set-up step failed; the message says why and what to do."""


class UsageError(Exception):
    pass


class StepFailed(SetupError):
    """A step failed and has said why already."""


# --------------------------------------------------------------------------- output


def say(text=""):
    print(text, flush=True)


def warn(text):
    print(text, file=sys.stderr, flush=True)


class Step(object):
    """Prints '[n/7] title ...' and, on success, '      done in x.y s'."""

    def __init__(self, number, title):
        self.number, self.title = number, title

    def __enter__(self):
        say("[%d/%d] %s ..." % (self.number, TOTAL, self.title))
        self.start = time.perf_counter()
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            say("      done in %.1f s" % (time.perf_counter() - self.start))


# --------------------------------------------------------------------------- arguments


def parse_args(argv):
    opts = {"authors": None, "setup_only": False, "dry_run": False, "rerun": False}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--authors":
            if len(argv) - i < 3:
                raise UsageError('--authors needs two names, e.g. --authors "Ada Lovelace" "Alan Turing"')
            opts["authors"] = [argv[i + 1], argv[i + 2]]
            i += 3
        elif arg == "--setup-only":
            opts["setup_only"] = True
            i += 1
        elif arg == "--dry-run":
            opts["dry_run"] = True
            i += 1
        elif arg == "--rerun":
            opts["rerun"] = True
            i += 1
        else:
            raise UsageError("unknown argument '%s' %s" % (arg, USAGE_HINT))
    return opts


# --------------------------------------------------------------------------- Python, platform


def python_problem(version_info):
    """Why this Python cannot be used (None if it can)."""
    major_minor = tuple(version_info[:2])
    if major_minor in SUPPORTED_PYTHONS:
        return None
    have = "%d.%d" % major_minor
    return (
        "Python %s is not supported: numpy 2.4.6 and torch 2.13.0 need Python 3.11, 3.12 or 3.13.\n"
        "  Install one: Ubuntu 22.04 and WSL: sudo apt-get install python3.11 python3.11-venv;\n"
        "  macOS: brew install python@3.12; elsewhere: pyenv install 3.12. Then run ./export.sh\n"
        "  again (it takes the first supported one of python3.13, python3.12, python3.11,\n"
        "  python3), or name it: PYTHON=python3.11 ./export.sh" % have
    )


def platform_problem(system, machine, mac_release="", libc=None, rosetta=False):
    """Why the pinned wheels cannot be installed here (None if they can).

    `system` is sys.platform, `machine` platform.machine(), `mac_release` the macOS version
    ('14.5'), `libc` a (name, version) pair such as ('glibc', '2.36'), `rosetta` whether an
    x86_64 Python runs translated on an Apple Silicon Mac.
    """
    supported = "Supported: " + SUPPORTED_PLATFORMS + "."
    if system.startswith("linux"):
        if machine not in ("x86_64", "amd64", "aarch64", "arm64"):
            return ("Linux on %s is not supported: torch 2.13.0 (CPU build) and numpy 2.4.6 have "
                    "wheels for x86_64 and aarch64 only. %s" % (machine or "this CPU", supported))
        name, version = libc or ("", "")
        if name != "glibc":
            return ("this Linux has no glibc (musl, e.g. Alpine?): the pinned wheels are "
                    "manylinux_2_28 builds and need glibc 2.28 or newer. Use a glibc "
                    "distribution (Debian, Ubuntu, Fedora, ...). %s" % supported)
        if _version_tuple(version) < (2, 28):
            return ("glibc %s is too old: the torch 2.13.0 CPU wheel is a manylinux_2_28 build "
                    "and needs glibc 2.28 or newer (Debian 10, Ubuntu 20.04, RHEL 8 or newer). %s"
                    % (version, supported))
        return None
    if system == "darwin":
        if machine != "arm64":
            if rosetta:
                return ("this Python is an Intel (x86_64) build running under Rosetta 2 on an "
                        "Apple Silicon Mac, and torch 2.13.0 has macOS wheels for arm64 only. "
                        "Use an arm64 Python, e.g. Homebrew's in /opt/homebrew: "
                        "PYTHON=/opt/homebrew/bin/python3.12 ./export.sh")
            return ("macOS on Intel (x86_64) is not supported: torch 2.13.0 has macOS wheels "
                    "only for Apple Silicon (arm64) with macOS 14 or newer. %s Build the PDF "
                    "on such a machine (a Linux virtual machine works too)." % supported)
        if _version_tuple(mac_release) < (14,):
            return ("macOS %s is too old: torch 2.13.0's macOS wheel needs macOS 14 (Sonoma) "
                    "or newer. Update macOS, or use another machine. %s"
                    % (mac_release or "(unknown version)", supported))
        return None
    if system in ("win32", "cygwin", "msys"):
        return ("Windows is supported through WSL2 only: in PowerShell `wsl --install` (Ubuntu), "
                "then clone the repository inside WSL's own file system (cd ~; not under /mnt/c) "
                "and run ./export.sh there. %s" % supported)
    return "%s is not supported. %s" % (system, supported)


def _version_tuple(text):
    parts = []
    for piece in str(text).split("."):
        match = re.match(r"\d+", piece)
        if not match:
            break
        parts.append(int(match.group()))
    return tuple(parts)


def _under_rosetta():
    try:
        out = subprocess.run(["sysctl", "-n", "sysctl.proc_translated"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return False
    return out == "1"


def this_platform_problem():
    libc = None
    if sys.platform.startswith("linux"):
        try:
            name, _, version = os.confstr("CS_GNU_LIBC_VERSION").partition(" ")  # 'glibc 2.36'
            libc = (name, version)
        except (AttributeError, ValueError, OSError):
            libc = ("", "")
    mac_release = platform.mac_ver()[0] if sys.platform == "darwin" else ""
    rosetta = sys.platform == "darwin" and platform.machine() == "x86_64" and _under_rosetta()
    return platform_problem(sys.platform, platform.machine(), mac_release, libc, rosetta)


def is_debian_like():
    return os.path.exists("/etc/debian_version") and shutil.which("apt-get") is not None


def linux_package_manager():
    """"apt-get", "dnf" or "pacman": the package manager of this Linux distribution, if any."""
    if is_debian_like():
        return "apt-get"
    for tool in ("dnf", "pacman"):
        if shutil.which(tool) is not None:
            return tool
    return None


def is_root():
    return hasattr(os, "geteuid") and os.geteuid() == 0


# --------------------------------------------------------------------------- step 1: .venv


def file_sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def venv_python(venv=VENV):
    return os.path.join(venv, "bin", "python")


def interpreter_of_this_process():
    return {"version": platform.python_version(), "executable": os.path.realpath(sys.executable)}


_PROBE = ("import json, os, platform, sys; print(json.dumps({'version': platform.python_version(), "
          "'executable': os.path.realpath(getattr(sys, '_base_executable', sys.executable))}))")


def probe_venv(venv=VENV):
    """The venv interpreter's version and base executable, or None if it does not run."""
    python = venv_python(venv)
    if not os.path.lexists(python):
        return None
    try:
        result = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    try:
        return json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def read_stamp(venv=VENV):
    try:
        with open(os.path.join(venv, os.path.basename(STAMP))) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def pyvenv_cfg(venv=VENV):
    """pyvenv.cfg as a dict (it names the interpreter a venv was made with)."""
    values = {}
    try:
        with open(os.path.join(venv, "pyvenv.cfg")) as f:
            for line in f:
                key, sep, value = line.partition("=")
                if sep:
                    values[key.strip()] = value.strip()
    except OSError:
        pass
    return values


def plan_venv(exists, probe, stamp, wanted_requirements, me, explicit):
    """What step 1 has to do: ('ok' | 'install' | 'create' | 'recreate', reason).

    `exists`: .venv/bin/python exists; `probe`: what the venv's interpreter says of itself
    (None: it does not run); `stamp`: what the last successful set-up recorded (the hash of
    requirements.txt, the venv's Python version and the interpreter that created it);
    `me`: this interpreter; `explicit`: the user named it with PYTHON. Without PYTHON, a
    working .venv of a supported version is kept whichever interpreter runs this.
    """
    if not exists:
        return "create", "no .venv yet"
    if probe is None:
        return "recreate", ".venv's interpreter no longer runs (removed or upgraded?)"
    if _version_tuple(probe["version"])[:2] not in SUPPORTED_PYTHONS:
        return "recreate", ".venv has Python %s, which is not supported" % probe["version"]
    if explicit:
        made_by = (stamp or {}).get("created_with")
        if probe["version"] != me["version"] or (made_by and made_by != me["executable"]):
            return "recreate", ("PYTHON names Python %s (%s), but .venv has Python %s%s"
                                % (me["version"], me["executable"], probe["version"],
                                   " (%s)" % made_by if made_by else ""))
    if not stamp or stamp.get("requirements_sha256") != wanted_requirements:
        return "install", "requirements.txt changed" if stamp else "no record of an install"
    if stamp.get("python_version") != probe["version"]:
        return "install", ".venv's Python changed since the last install"
    return "ok", "Python %s" % probe["version"]


def pinned_torch(requirements=REQUIREMENTS):
    """The torch version pinned for Linux in requirements.txt, e.g. '2.13.0+cpu'."""
    with open(requirements) as f:
        for line in f:
            match = re.match(r'\s*torch\s*==\s*([^\s;]+)\s*;\s*sys_platform\s*==\s*"linux"', line)
            if match:
                return match.group(1)
    return None


def _fetch_text(url, timeout):
    import urllib.request

    with urllib.request.urlopen(url, timeout=timeout) as response:
        charset = response.headers.get_content_charset() or "utf-8"
        return response.read().decode(charset, errors="replace"), response.geturl()


def torch_links_page(html_text, base_url):
    """A find-links page with the torch wheels of `html_text`, every link made absolute.

    Keeps each link's attributes (hash fragment, data-requires-python, PEP 658 metadata).
    """
    from html import escape
    from html.parser import HTMLParser
    from urllib.parse import unquote, urljoin, urlsplit

    links = []

    class Anchors(HTMLParser):
        base = base_url

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "base" and attrs.get("href"):
                self.base = urljoin(base_url, attrs["href"])
            if tag != "a" or not attrs.get("href"):
                return
            url = urljoin(self.base, attrs["href"])
            name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
            if name.startswith("torch-") and name.endswith(".whl"):
                rest = "".join(' %s="%s"' % (k, escape(v or "", quote=True))
                               for k, v in attrs.items() if k != "href")
                links.append((name, '<a href="%s"%s>%s</a><br>' % (escape(url, quote=True), rest, escape(name))))

    Anchors().feed(html_text)
    page = ("<!DOCTYPE html>\n<html><head><title>torch wheels from %s</title></head><body>\n%s\n"
            "</body></html>\n" % (escape(base_url), "\n".join(a for _, a in links)))
    return page, [name for name, _ in links]


def torch_wheel_name_for_this_machine(version):
    tag = "cp%d%d" % sys.version_info[:2]
    arch = "aarch64" if platform.machine() in ("aarch64", "arm64") else "x86_64"
    return "torch-%s-%s-%s-manylinux_2_28_%s.whl" % (version, tag, tag, arch)


def torch_find_links(workdir, log=say):
    """pip arguments that add the CPU torch wheels on Linux: ([args], source, note).

    TORCH_WHEELS may be a folder or an HTML file (handed to pip as is) or an http(s) URL of a
    page that links the wheels: that page is fetched here once (one retry, none when the name
    does not resolve; at most about 30 s on a network that drops the packets) and
    handed to pip as a local file with absolute links, so that pip, which fetches every
    find-links page once per package it looks up, never waits for the network on it.
    """
    if not sys.platform.startswith("linux"):
        return [], None, None
    source = os.environ.get("TORCH_WHEELS", "").strip() or TORCH_WHEELS_DEFAULT
    if not re.match(r"(?i)https?://", source):
        if source.lower().startswith("file:"):
            return ["--find-links", source], source, None
        path = os.path.abspath(os.path.join(ROOT, os.path.expanduser(source)))
        if not os.path.exists(path):
            raise SetupError("TORCH_WHEELS=%s: there is no such folder or file (%s)" % (source, path))
        return ["--find-links", path], source, None
    import socket

    text = final_url = last = None
    for attempt in (1, 2):
        try:
            text, final_url = _fetch_text(source, timeout=15)
            last = None
            break
        except Exception as err:  # noqa: BLE001 (URLError, timeouts, SSL, HTTP errors)
            last = err
            if isinstance(getattr(err, "reason", None), socket.gaierror):
                break  # the name does not resolve (offline): a retry would not help
            if attempt == 1:
                time.sleep(2)
    if last is not None:
        note = _reason(last)
        log("      note: could not read %s (%s); pip looks for torch only where its own "
            "configuration says" % (source, note))
        return [], source, note
    page, names = torch_links_page(text, final_url)
    version = pinned_torch()
    wanted = torch_wheel_name_for_this_machine(version) if version else None
    if wanted and wanted not in names:
        log("      note: %s lists no %s" % (source, wanted))
    path = os.path.join(workdir, "torch-wheels.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
    return ["--find-links", path], source, None


def _reason(err):
    reason = getattr(err, "reason", None) or err
    text = str(reason)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return ("TLS certificate verification failed: this Python finds no CA certificates; "
                "set SSL_CERT_FILE to your system's CA bundle, e.g. /etc/ssl/certs/ca-certificates.crt")
    return text or type(err).__name__


def pip_install_command(python, find_links):
    return [python, "-m", "pip", "install", "--disable-pip-version-check", "-r", REQUIREMENTS] + find_links


def _run_logged(cmd, log_path, env=None):
    with open(log_path, "a") as log:
        log.write("\n$ %s\n" % " ".join(cmd))
        log.flush()
        return subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env).returncode


def _log_tail(log_path, lines=25):
    try:
        with open(log_path, errors="replace") as f:
            text = [line.rstrip("\n") for line in f if "is ignored" not in line]
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def _torch_missing(log_path):
    try:
        with open(log_path, errors="replace") as f:
            text = f.read()
    except OSError:
        return False
    return re.search(r"(No matching distribution found for|satisfies the requirement|Cannot install) torch==|"
                     r"no matching distributions available for your environment:\s+torch\b", text) is not None


def torch_error(source, note):
    version = pinned_torch() or "2.13.0+cpu"
    wanted = torch_wheel_name_for_this_machine(version)
    where = "TORCH_WHEELS=%s" % source if os.environ.get("TORCH_WHEELS") else \
        "%s (the default; TORCH_WHEELS overrides it)" % source
    return (
        "pip found no torch==%s, PyTorch's CPU build for Linux (it is not on PyPI).\n"
        "  pip looked for it on %s and where its own configuration points.%s\n"
        "  Fix: make that page reachable, or download %s\n"
        "  (on any machine, from %s) into a folder and run\n"
        "    TORCH_WHEELS=/path/to/that/folder ./export.sh\n"
        "  TORCH_WHEELS may also be the URL of a mirror of PyTorch's CPU wheel page."
        % (version, where, ("\n  The page could not be read: %s." % note) if note else "", wanted,
           TORCH_WHEELS_DEFAULT)
    )


def create_venv(clear):
    cmd = [sys.executable, "-m", "venv"] + (["--clear"] if clear else []) + [VENV]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if result.returncode == 0:
        return
    try:
        import ensurepip  # noqa: F401
        has_ensurepip = True
    except ImportError:
        has_ensurepip = False
    detail = (result.stderr or result.stdout).strip().splitlines()[-3:]
    if not has_ensurepip and is_debian_like():
        package = "python%d.%d-venv" % sys.version_info[:2]
        if is_root():
            say("      installing %s (venv needs it on Debian/Ubuntu)" % package)
            apt_install([package])
            return create_venv(clear=True)
        raise SetupError("this Python (%s) cannot create virtual environments: Debian/Ubuntu ship "
                         "venv's pip separately. Install it once with:\n  sudo apt-get install %s"
                         % (sys.executable, package))
    raise SetupError("could not create .venv with %s:\n  %s\n  Choose another interpreter with "
                     "PYTHON=python3.12 ./export.sh" % (sys.executable, "\n  ".join(detail)))


def install_requirements(python, find_links, log_path, dry_run_report=None):
    """pip install -r requirements.txt, the same command for the real and the dry run."""
    rc = _run_logged([python, "-m", "pip", "install", "--disable-pip-version-check", "--upgrade", "pip"],
                     log_path)
    if rc != 0:
        raise SetupError("pip could not upgrade itself (log: %s):\n%s" % (log_path, _log_tail(log_path)))
    cmd = pip_install_command(python, find_links)
    if dry_run_report:
        cmd += ["--dry-run", "--report", dry_run_report]
    return _run_logged(cmd, log_path)


def step_environment(explicit_python):
    """Step 1. Returns the path of the venv's python."""
    me = interpreter_of_this_process()
    want = file_sha256(REQUIREMENTS)
    action, reason = plan_venv(os.path.lexists(venv_python()), probe_venv(), read_stamp(), want, me,
                               explicit_python)
    if action == "ok":
        say("      .venv is up to date (%s)" % reason)
        return venv_python()
    if action in ("create", "recreate"):
        if action == "recreate":
            was = pyvenv_cfg()
            say("      recreating .venv: %s%s" % (reason, " (it was Python %s, %s)" % (
                was.get("version", "?"), was.get("executable") or was.get("home", "?"))
                if "no longer runs" in reason else ""))
        say("      Python %s (%s)" % (me["version"], me["executable"]))
        create_venv(clear=(action == "recreate"))
    else:
        say("      installing requirements.txt into .venv: %s" % reason)
    python = venv_python()
    with open(PIP_LOG, "w") as log:
        log.write("sheet05 set-up, %s\n" % time.strftime("%Y-%m-%d %H:%M:%S"))
    tmp = tempfile.mkdtemp(prefix="sheet05-setup-")
    try:
        find_links, source, note = torch_find_links(tmp)
        say("      pip install -r requirements.txt%s (log: .venv/pip.log)" % (
            "" if action == "install" else ", about %s MB to download unless pip has them cached"
            % ("235" if sys.platform == "darwin" else "350")))
        rc = install_requirements(python, find_links, PIP_LOG)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if rc != 0:
        if source and _torch_missing(PIP_LOG):
            raise SetupError(torch_error(source, note) + "\n  (pip's log: .venv/pip.log)")
        raise SetupError("pip could not install requirements.txt (log: .venv/pip.log):\n%s"
                         % _log_tail(PIP_LOG))
    probe = probe_venv()
    created_with = me["executable"] if action != "install" else (read_stamp() or {}).get("created_with")
    stamp = {"requirements_sha256": want, "python_version": probe["version"], "created_with": created_with}
    with open(STAMP, "w") as f:
        json.dump(stamp, f, indent=1)
    old = os.path.join(VENV, ".requirements.sha256")  # the stamp of earlier versions
    if os.path.exists(old):
        os.remove(old)
    return python


def dry_run():
    """Step 1 as a plan: the same pip command with --dry-run --report in a throwaway venv."""
    me = interpreter_of_this_process()
    action, reason = plan_venv(os.path.lexists(venv_python()), probe_venv(), read_stamp(),
                               file_sha256(REQUIREMENTS), me, bool(os.environ.get("PYTHON")))
    say("      .venv now: %s (%s)" % ({"ok": "up to date", "install": "would install requirements.txt",
                                        "create": "would be created",
                                        "recreate": "would be recreated"}[action], reason))
    tmp = tempfile.mkdtemp(prefix="sheet05-dry-run-")
    try:
        venv = os.path.join(tmp, "venv")
        result = subprocess.run([sys.executable, "-m", "venv", venv], capture_output=True, text=True)
        if result.returncode != 0:
            raise SetupError("could not create a throwaway venv with %s:\n%s" % (sys.executable, result.stderr))
        find_links, source, note = torch_find_links(tmp)
        report = os.path.join(tmp, "report.json")
        log_path = os.path.join(tmp, "pip.log")
        python = os.path.join(venv, "bin", "python")
        say("      $ " + " ".join(pip_install_command(".venv/bin/python", find_links)
                                  + ["--dry-run", "--report", "REPORT"]))
        rc = install_requirements(python, find_links, log_path, dry_run_report=report)
        if rc != 0:
            if source and _torch_missing(log_path):
                raise SetupError(torch_error(source, note))
            raise SetupError("pip --dry-run failed:\n%s" % _log_tail(log_path))
        os.makedirs(os.path.dirname(DRY_RUN_REPORT), exist_ok=True)
        shutil.copyfile(report, DRY_RUN_REPORT)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with open(DRY_RUN_REPORT) as f:
        items = json.load(f).get("install", [])
    import textwrap

    say("      pip would install %d packages into a new .venv:" % len(items))
    others = []
    for item in sorted(items, key=lambda i: i["metadata"]["name"].lower()):
        meta = item["metadata"]
        if meta["name"].lower() == "torch":
            say("        torch %s   from %s" % (meta["version"], item.get("download_info", {}).get("url", "?")))
        else:
            others.append("%s==%s" % (meta["name"], meta["version"]))
    say(textwrap.fill(", ".join(others), width=96, initial_indent=" " * 8, subsequent_indent=" " * 8,
                      break_on_hyphens=False))
    say("      pip's full report: %s" % os.path.relpath(DRY_RUN_REPORT, ROOT))


# --------------------------------------------------------------------------- step 2: TeX


def venv_dejavu_folder(venv=VENV):
    """matplotlib's font folder in .venv (mpl-data/fonts/ttf), or None."""
    lib = os.path.join(venv, "lib")
    for entry in sorted(os.listdir(lib)) if os.path.isdir(lib) else []:
        folder = os.path.join(lib, entry, "site-packages", "matplotlib", "mpl-data", "fonts", "ttf")
        if os.path.isdir(folder):
            return folder
    return None


def missing_dejavu(venv=VENV):
    """The DejaVu files that matplotlib's copy in .venv lacks (all of them without matplotlib)."""
    folder = venv_dejavu_folder(venv)
    return [n for n in DEJAVU_FILES if folder is None or not os.path.isfile(os.path.join(folder, n))]


def missing_tex():
    """Names of the missing commands and files (as XeTeX would look them up)."""
    missing = [c for c in TEX_COMMANDS if shutil.which(c) is None]
    if "kpsewhich" in missing:
        return missing + [name for name, _ in TEX_FILES]
    names = [name for name, _ in TEX_FILES]
    result = subprocess.run(["kpsewhich"] + names, capture_output=True, text=True)
    found = {os.path.basename(line.strip()) for line in result.stdout.splitlines() if line.strip()}
    return missing + [name for name in names if name not in found]


def tex_advice(missing):
    """How to install what is missing, for this platform."""
    lines = ["the TeX toolchain is incomplete; missing: %s" % ", ".join(missing)]
    if sys.platform == "darwin":
        lines += [
            "On macOS install MacTeX (TeX Live, about 5 GB) and pandoc with Homebrew:",
            "  brew install --cask mactex-no-gui",
            "  brew install pandoc",
            "then open a new terminal (or run: eval \"$(/usr/libexec/path_helper)\") and ./export.sh again.",
        ]
    else:
        manager = linux_package_manager()
        if manager == "apt-get":
            lines += ["Install it once with:",
                      "  sudo apt-get update && sudo apt-get install -y --no-install-recommends " + APT_PACKAGES]
        elif manager == "dnf":
            lines += ["Install it once with (Fedora):", "  sudo dnf install " + DNF_PACKAGES]
        elif manager == "pacman":
            lines += ["Install it once with (Arch Linux):", "  sudo pacman -S --needed " + PACMAN_PACKAGES]
    tl = []
    for name in missing:
        package = TLMGR_COMMANDS.get(name) or dict(TEX_FILES).get(name)
        if package and package not in tl:
            tl.append(package)
    if tl and sys.platform == "darwin":
        lines += ["With BasicTeX or an older MacTeX instead, add the missing parts with:",
                  "  sudo tlmgr install " + " ".join(tl)]
    elif tl:
        lines += ["With TeX Live from tug.org (tlmgr; no root needed for a TeX Live in your home):",
                  "  tlmgr install " + " ".join(tl)]
    if "pandoc" in missing and sys.platform != "darwin":
        lines += ["pandoc: your distribution's package, or the binary from "
                  "https://pandoc.org/installing.html (a copy in ~/.local/bin works)."]
    return "\n  ".join(lines)


def apt_install(packages):
    log_path = os.path.join(ROOT, "build-apt.log")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    with open(log_path, "w") as log:
        ok = subprocess.run(["apt-get", "update", "-qq"], stdout=log, stderr=subprocess.STDOUT, env=env).returncode == 0
        ok = ok and subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + list(packages),
                                   stdout=log, stderr=subprocess.STDOUT, env=env).returncode == 0
    if not ok:
        raise SetupError("apt-get install failed (full log: build-apt.log):\n%s" % _log_tail(log_path, 20))
    os.remove(log_path)


def step_tex():
    if sys.platform == "darwin" and shutil.which("xelatex") is None and os.path.isdir(MACTEX_BIN):
        # MacTeX is installed but this shell was opened before: its PATH lacks texbin.
        os.environ["PATH"] = os.environ.get("PATH", "") + os.pathsep + MACTEX_BIN
        say("      using %s (not on this shell's PATH yet)" % MACTEX_BIN)
    dejavu = missing_dejavu()
    if dejavu:
        raise SetupError("the DejaVu fonts that matplotlib ships are missing from .venv (%s): .venv is "
                         "damaged. Remove it (rm -rf .venv) and run ./export.sh again." % ", ".join(dejavu))
    missing = missing_tex()
    if not missing:
        say("      all present")
        return
    if is_root() and is_debian_like():
        say("      missing: %s" % ", ".join(missing))
        say("      installing: %s" % APT_PACKAGES)
        apt_install(APT_PACKAGES.split())
        missing = missing_tex()
        if missing:
            raise SetupError("the TeX toolchain is still incomplete after apt-get install: %s"
                             % ", ".join(missing))
        return
    raise SetupError(tex_advice(missing))


# --------------------------------------------------------------------------- main


def run(opts):
    started = time.perf_counter()
    explicit = bool(os.environ.get("PYTHON"))
    if opts["dry_run"]:
        with Step(1, "Python environment, dry run (what pip would install; nothing is changed)"):
            dry_run()
        return 0
    with Step(1, "Python environment (.venv from requirements.txt)"):
        python = step_environment(explicit)
    with Step(2, "TeX toolchain (xelatex, latexmk, pandoc, LaTeX packages, Latin Modern; DejaVu from .venv)"):
        step_tex()
    with Step(3, "Course data for exercise 2 (data/lie_detection, SHA-256 verified)"):
        if subprocess.run([python, "-m", "sheet05.data", "fetch"], cwd=ROOT).returncode != 0:
            raise StepFailed()
    if opts["setup_only"]:
        say("set-up complete (%.1f s)" % (time.perf_counter() - started))
        return 0
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    cmd = [python, "-m", "sheet05.export", "--first-step", "4", "--total-steps", str(TOTAL)]
    if opts["authors"]:
        cmd += ["--authors"] + opts["authors"]
    if opts["rerun"]:
        cmd.append("--rerun")
    rc = subprocess.run(cmd, cwd=ROOT, env=env).returncode
    if rc == 0:
        say("total %.1f s" % (time.perf_counter() - started))
    return rc


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    problem = python_problem(sys.version_info)
    if problem:  # before anything else: older Pythons lack what the rest of this file uses
        warn("error: " + problem)
        return 1
    try:
        opts = parse_args(argv)
    except UsageError as err:
        warn("error: %s" % err)
        return 2
    problem = this_platform_problem()
    if problem:
        warn("error: " + problem)
        return 1
    os.chdir(ROOT)
    try:
        return run(opts)
    except SetupError as err:
        if str(err):
            warn("error: %s" % err)
        return 1
    except KeyboardInterrupt:
        warn("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
