"""What ./export.sh runs: set-up (steps 1-3) and the build (steps 4-7). Standard library only.

``export.sh`` only picks a Python interpreter and runs ``python -m sheet05.setup ARGS`` from
the repository root. This module then

0. refuses, before touching anything, a Python or a platform that the pinned wheels do not
   support, and says what is supported;
1. keeps ``.venv`` in step with ``requirements.txt`` (the lock: every package pinned, every
   file checked against its SHA-256) and the interpreter: installs with uv when uv is on the
   PATH (or in .venv, where the lock puts it), else with pip; adopts an existing .venv (made
   by uv, venv or virtualenv) and installs pip into it only when pip is the installer and it
   has none; installs again when requirements.txt changed, and recreates .venv when its
   interpreter no longer runs (a Homebrew or pyenv upgrade), is an unsupported version, or
   differs from the one that ``PYTHON`` names. uv gets the indexes and find-links that pip
   is configured with (``pip config list``: a university mirror). On Linux, torch is the CPU
   build, from the page that requirements.txt names (torch-cpu-wheels.html, links to
   PyTorch's CPU page); ``TORCH_WHEELS`` adds a folder, file or page (an http(s) page is
   fetched here once and handed over as a local file: pip would fetch a remote find-links
   page again for every package);
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
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, ".venv")
REQUIREMENTS = os.path.join(ROOT, "requirements.txt")
STAMP = os.path.join(VENV, ".sheet05-setup.json")
PIP_LOG = os.path.join(VENV, "pip.log")
DRY_RUN_REPORT = os.path.join(ROOT, "build", "setup-dry-run.json")
TOTAL = 7

SUPPORTED_PYTHONS = ((3, 11), (3, 12), (3, 13), (3, 14))  # export.sh has the same range
SUPPORTED_PYTHONS_TEXT = "3.11, 3.12, 3.13 or 3.14"
TORCH_PAGE = "https://download.pytorch.org/whl/cpu/torch/"  # torch-cpu-wheels.html lists its Linux files
TORCH_PAGE_FILE = "torch-cpu-wheels.html"
PIP_MINIMUM = (23, 1)  # older pips are upgraded first (hash-checked --dry-run --report)
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


def run_child(cmd, **kwargs):
    """Run a step's own process (the data check, the build); its exit code.

    Ctrl+C reaches this process and the child alike (the terminal sends it to the whole
    group). The child then stops wherever it is, and the libraries it stops mid-way print
    tracebacks: what the child writes to stderr after Ctrl+C is dropped, and KeyboardInterrupt
    is raised here once the child has ended, so that one line says what was kept (see main).
    Until then its stderr is passed through as it comes."""
    interrupted = threading.Event()
    # The Python-level handler runs late (the main thread waits in waitpid), but the C-level
    # one writes to the wakeup pipe the moment the signal lands, before the child can print:
    # the relay looks there before it passes anything on.
    signalled, wakeup = os.pipe()
    os.set_blocking(wakeup, False)
    previous = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.set())
    previous_wakeup = signal.set_wakeup_fd(wakeup, warn_on_full_buffer=False)
    try:
        child = subprocess.Popen(cmd, stderr=subprocess.PIPE, **kwargs)

        def pass_stderr_on():
            for chunk in iter(lambda: os.read(child.stderr.fileno(), 65536), b""):
                if select.select([signalled], [], [], 0)[0]:
                    interrupted.set()
                if not interrupted.is_set():
                    sys.stderr.buffer.write(chunk)
                    sys.stderr.flush()

        relay = threading.Thread(target=pass_stderr_on, daemon=True)
        relay.start()
        rc = child.wait()
        relay.join()
        child.stderr.close()
    finally:
        signal.set_wakeup_fd(previous_wakeup)
        signal.signal(signal.SIGINT, previous)
        os.close(signalled)
        os.close(wakeup)
    if interrupted.is_set():
        raise KeyboardInterrupt
    return rc


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
    opts = {"authors": None, "setup_only": False, "dry_run": False, "rerun": False, "draft": False}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--authors":
            if len(argv) - i < 3:
                raise UsageError('--authors needs two names, e.g. --authors "Your Name" "Your Partner\'s Name" '
                                 "(with your real names; or set them once in authors.txt)")
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
        elif arg == "--draft":
            opts["draft"] = True
            i += 1
        else:
            raise UsageError("unknown argument '%s' %s" % (arg, USAGE_HINT))
    return opts


# --------------------------------------------------------------------------- Python, platform


def python_problem(version_info):
    """Why this Python cannot be used (None if it can): the packages that have no wheel for it."""
    major_minor = tuple(version_info[:2])
    if major_minor in SUPPORTED_PYTHONS:
        return None
    have = "%d.%d" % major_minor
    tag = "cp%d%d" % major_minor
    if major_minor < SUPPORTED_PYTHONS[0]:
        why = ("numpy 2.4.6 and scipy 1.17.1, pinned in requirements.txt, need Python 3.11 or newer:"
               "\n  they have no wheel for Python %s (%s)" % (have, tag))
    else:
        why = ("requirements.txt pins wheels built for Python 3.11-3.14: numpy 2.4.6, scipy 1.17.1,"
               "\n  torch 2.13.0 and the other compiled packages have no wheel for Python %s (%s) yet"
               % (have, tag))
    return (
        "Python %s is not supported: %s. Supported: Python %s.\n"
        "  Install one: Ubuntu 22.04 and WSL: sudo apt-get install python3.11 python3.11-venv;\n"
        "  macOS: brew install python@3.13; elsewhere: pyenv install 3.13. Then run ./export.sh\n"
        "  again (it takes the first supported one of python3.14, python3.13, python3.12,\n"
        "  python3.11, python3), or name it: PYTHON=python3.11 ./export.sh"
        % (have, why, SUPPORTED_PYTHONS_TEXT)
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
        return ("the PDF is built through WSL2 on Windows (XeLaTeX, latexmk and this script "
                "need a Linux): in PowerShell `wsl --install` (Ubuntu), then clone the repository "
                "inside WSL's own file system (cd ~; not under /mnt/c) and run ./export.sh there. "
                "The notebook alone runs natively: py -m venv .venv, then "
                ".venv\\Scripts\\pip install -r requirements.txt (see README.md). %s" % supported)
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
            match = re.match(r'\s*torch\s*==\s*([^\s;]+)\s*;\s*sys_platform\s*==\s*["\']linux["\']', line)
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
    """Installer arguments that add TORCH_WHEELS on Linux: ([args], source, note).

    requirements.txt itself names torch-cpu-wheels.html (links to PyTorch's CPU page), so by
    default there is nothing to add. TORCH_WHEELS may be a folder or an HTML file (handed to
    the installer as is) or an http(s) URL of a page that links the wheels: that page is
    fetched here once (one retry, none when the name does not resolve; at most about 30 s on
    a network that drops the packets) and handed over as a local file with absolute links,
    so that pip, which fetches every find-links page once per package it looks up, never
    waits for the network on it. The hashes in requirements.txt decide which file is taken.
    """
    source = os.environ.get("TORCH_WHEELS", "").strip()
    if not sys.platform.startswith("linux") or not source:
        return [], None, None
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
        log("      note: could not read %s (%s). The set-up goes on without it: if pip "
            "finds torch %s nowhere else, the error below says how to get it." % (source, note, pinned_torch() or ""))
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


def pip_install_command(python, find_links, requirements=REQUIREMENTS):
    return [python, "-m", "pip", "install", "--disable-pip-version-check", "--require-hashes", "-r",
            requirements] + find_links


def uv_install_command(uv, python, find_links, mirrored=(), requirements=REQUIREMENTS):
    return [uv, "pip", "install", "--python", python, "--require-hashes", "-r", requirements] + list(mirrored) + find_links


def local_torch_folder(settings):
    """A folder of pip's find-links that holds this machine's torch wheel (pinned version), or None."""
    version = pinned_torch()
    if not sys.platform.startswith("linux") or not version:
        return None
    wanted = torch_wheel_name_for_this_machine(version)
    for place in settings.get("find-links", "").split():
        folder = place[len("file://"):] if place.startswith("file://") else place
        if os.path.isfile(os.path.join(folder, wanted)):
            return folder
    return None


def requirements_for(find_links, workdir):
    """requirements.txt, or, when torch comes from elsewhere (TORCH_WHEELS or a local folder),
    a copy without its torch page: uv would otherwise take the page's link (its hash is known
    in advance) over a local file, and a machine without access to PyTorch's server would
    fail. The hashes still decide which file is accepted."""
    if not find_links:
        return REQUIREMENTS
    with open(REQUIREMENTS) as f:
        lines = [line for line in f if line.split() != ["--find-links", TORCH_PAGE_FILE]]
    path = os.path.join(workdir, "requirements.txt")
    with open(path, "w") as f:
        f.writelines(lines)
    return path


def which_installer(action, env=None):
    """('uv' | 'pip', path of uv or None, why): INSTALLER=pip|uv decides; else uv if it is on
    the PATH, or in a .venv that is kept (the lock installs it there), else pip."""
    env = os.environ if env is None else env
    wanted = env.get("INSTALLER", "").strip().lower()
    if wanted not in ("", "uv", "pip"):
        raise SetupError("INSTALLER=%s: say INSTALLER=uv or INSTALLER=pip" % wanted)
    on_path = shutil.which("uv", path=env.get("PATH"))
    own = os.path.join(VENV, "bin", "uv")
    own = own if action == "install" and os.access(own, os.X_OK) else None
    if wanted == "pip":
        return "pip", None, "INSTALLER=pip"
    if on_path:
        return "uv", on_path, "uv is on the PATH"
    if own:
        return "uv", own, ".venv's own uv"
    if wanted == "uv":
        raise SetupError("INSTALLER=uv, but uv is not on the PATH. Install it (https://docs.astral.sh/uv/,"
                         " or: pipx install uv), or leave INSTALLER unset to use pip")
    return "pip", None, "uv is not on the PATH"


def pip_settings(python=None, env=None):
    """The index settings pip is configured with, as `pip config list` shows them (files and
    PIP_* variables; the environment wins over [install], which wins over [global]).
    {} when pip is not there or PIP_CONFIG_FILE=/dev/null and no PIP_* variables."""
    try:
        result = subprocess.run([python or sys.executable, "-m", "pip", "config", "list"], capture_output=True,
                                text=True, timeout=60, env=env)
    except (OSError, subprocess.SubprocessError):
        result = None
    if result is None or result.returncode != 0:  # no pip here (Debian's python3): read the files
        return _pip_settings_from_files(os.environ if env is None else env)
    found = {}
    rank = {"global": 0, "install": 1, ":env:": 2}
    for line in result.stdout.splitlines():
        match = re.match(r"([^.]+)\.([\w-]+)=(['\"])(.*)\3$", line.strip())
        if not match or match.group(1) not in rank:
            continue
        key, value = match.group(2), match.group(4).replace("\\n", " ")  # pip shows a line break as \n
        if key not in found or rank[match.group(1)] >= found[key][0]:
            found[key] = (rank[match.group(1)], value)
    return {key: value for key, (_, value) in found.items()}


def _pip_settings_from_files(env):
    """pip's configuration without pip: its files in pip's order, then PIP_* variables."""
    import configparser

    if env.get("PIP_CONFIG_FILE") == os.devnull:
        files = []
    else:
        home = os.path.expanduser("~")
        dirs = (env.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(os.pathsep)
        files = [os.path.join(d, "pip", "pip.conf") for d in dirs] + ["/etc/pip.conf",
                 os.path.join(home, ".pip", "pip.conf"),
                 os.path.join(env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config"), "pip", "pip.conf"),
                 os.path.join(home, "Library", "Application Support", "pip", "pip.conf"),
                 env.get("PIP_CONFIG_FILE") or ""]
    found = {}
    for path in files:
        parser = configparser.RawConfigParser()
        try:
            parser.read(path)
        except (configparser.Error, OSError):
            continue
        for section in ("global", "install"):
            if parser.has_section(section):
                found.update({key: " ".join(value.split()) for key, value in parser.items(section)})
    for key, value in env.items():
        if key.startswith("PIP_") and key != "PIP_CONFIG_FILE":
            found[key[4:].lower().replace("_", "-")] = value
    return found


def uv_mirror_of_pip(settings):
    """uv's options for pip's index settings (a university mirror, local wheel folders).

    pip takes the best version from all its indexes together; uv does the same with
    unsafe-best-match, which is safe here: every file is pinned by its hash in requirements.txt.
    """
    args = []
    if settings.get("no-index", "").lower() in ("1", "true", "yes", "on"):
        args.append("--no-index")
    if settings.get("index-url"):
        args += ["--index-url", settings["index-url"].split()[0]]
    for url in settings.get("extra-index-url", "").split():
        args += ["--extra-index-url", url]
    for place in settings.get("find-links", "").split():
        args += ["--find-links", place]
    for host in settings.get("trusted-host", "").split():
        args += ["--allow-insecure-host", host]
    if "--index-url" in args or "--extra-index-url" in args:
        args += ["--index-strategy", "unsafe-best-match"]
    return args


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


def _read_log(log_path):
    try:
        with open(log_path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _torch_missing(log_path):
    """Whether the installer found no file of torch's Linux CPU build, or could not fetch it."""
    text = _read_log(log_path)
    return re.search(r"(No matching distribution found for|satisfies the requirement|Cannot install) torch==|"
                     r"no matching distributions available for your environment:\s+torch\b|"
                     r"there is no version of torch==|Failed to (download|fetch) `?torch[=`]|"
                     r"(Max retries|Failed to establish|Could not fetch|Failed to fetch|Connection).*download\.pytorch\.org",
                     text) is not None


def hash_mismatches(log_path):
    """[(package==version, file or URL)] whose download did not match requirements.txt's SHA-256
    (pip's and uv's wording)."""
    text = _read_log(log_path)
    found = []
    if "DO NOT MATCH THE HASHES" in text:
        after = text.split("DO NOT MATCH THE HASHES", 1)[1]
        found += re.findall(r"^\s+(\S+==\S+) from (\S+?)(?: \(from .*\))?:?$", after, re.M)
    for requirement in re.findall(r"Hash mismatch for `([^`]+)`", text):
        url = re.search(r"Failed to (?:download|fetch)[^\n]*`%s`[^\n]*\n(?:.*\n){0,3}?.*?(https?://\S+|file://\S+)"
                        % re.escape(requirement), text)
        found.append((requirement, url.group(1) if url else "(see the log)"))
    return sorted(set(found))


def missing_wheels(log_path):
    """[(package==version, what is missing)] for which the installer found no usable wheel."""
    text = _read_log(log_path)
    found = re.findall(r"No matching distribution found for (\S+)", text)
    found += re.findall(r"(?:there is no version of|all versions of) ([A-Za-z0-9._-]+(?:==\S+)?)", text)
    tag = "cp%d%d" % sys.version_info[:2]
    what = "no wheel for Python %d.%d (%s) on %s %s" % (sys.version_info[0], sys.version_info[1], tag, sys.platform,
                                                        platform.machine())
    return [(name.strip("`,"), what) for name in dict.fromkeys(found)]


def install_failure(installer, log_path, source, note):
    """The error for a failed install: names the package and the file or wheel, and the fix."""
    log_name = os.path.relpath(log_path, ROOT) if log_path.startswith(ROOT) else log_path
    bad = hash_mismatches(log_path)
    if bad:
        return ("%s refused %s: the downloaded file does not match its SHA-256 in requirements.txt\n  %s\n"
                "  A corrupted download, or a mirror or folder (TORCH_WHEELS, pip's find-links) that serves\n"
                "  a different file under the same name. Nothing was installed from it. Remove that file\n"
                "  or fix the mirror, then run ./export.sh again (log: %s)."
                % (installer, ", ".join(req for req, _ in bad),
                   "\n  ".join("%s: %s" % (req, url) for req, url in bad), log_name))
    if sys.platform.startswith("linux") and _torch_missing(log_path):
        return torch_error(source, note) + "\n  (%s's log: %s)" % (installer, log_name)
    missing = missing_wheels(log_path)
    if missing:
        return ("%s found no wheel to install for %s (%s). The supported platforms and Pythons are\n"
                "  listed in README.md (log: %s):\n%s"
                % (installer, ", ".join(name for name, _ in missing), missing[0][1], log_name, _log_tail(log_path)))
    return "%s could not install requirements.txt (log: %s):\n%s" % (installer, log_name, _log_tail(log_path))


def torch_error(source, note):
    version = pinned_torch() or "2.13.0+cpu"
    wanted = torch_wheel_name_for_this_machine(version)
    where = "PyTorch's CPU page (%s, the files listed in %s)" % (TORCH_PAGE, TORCH_PAGE_FILE)
    if source:
        where += " and TORCH_WHEELS=%s" % source
    return (
        "no torch==%s could be installed: the wheel %s,\n"
        "  PyTorch's CPU build for Linux (it is not on PyPI), was looked for on %s.%s\n"
        "  Fix: make download.pytorch.org reachable, or download that file (on any machine, from\n"
        "  %s) into a folder and run\n"
        "    TORCH_WHEELS=/path/to/that/folder ./export.sh\n"
        "  TORCH_WHEELS may also be the URL of a mirror of PyTorch's CPU wheel page."
        % (version, wanted, where, ("\n  TORCH_WHEELS could not be read: %s." % note) if note else "", TORCH_PAGE)
    )


def create_venv(clear, with_pip=True):
    """python -m venv (with pip only if pip installs: uv needs none, and it saves seconds)."""
    cmd = [sys.executable, "-m", "venv"] + (["--clear"] if clear else []) + ([] if with_pip else ["--without-pip"]) + [VENV]
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
            return create_venv(clear=True, with_pip=with_pip)
        raise SetupError("this Python (%s) cannot create virtual environments: Debian/Ubuntu ship "
                         "venv's pip separately. Install it once with:\n  sudo apt-get install %s"
                         % (sys.executable, package))
    raise SetupError("could not create .venv with %s:\n  %s\n  Choose another interpreter with "
                     "PYTHON=python3.12 ./export.sh" % (sys.executable, "\n  ".join(detail)))


def pip_version(python):
    """The venv's pip version as a tuple, () if it has no pip."""
    result = subprocess.run([python, "-m", "pip", "--version"], capture_output=True, text=True)
    match = re.match(r"pip (\S+)", result.stdout) if result.returncode == 0 else None
    return _version_tuple(match.group(1)) if match else ()


def ensure_pip(python, log_path):
    """pip in the venv, recent enough. A .venv made by uv (or with --without-pip) has none:
    ensurepip adds it from the standard library, without the network. False if it cannot."""
    have = pip_version(python)
    if not have:
        say("      .venv has no pip (made by uv?): adding it with ensurepip")
        if _run_logged([python, "-m", "ensurepip", "--upgrade", "--default-pip"], log_path) != 0:
            return False
        have = pip_version(python)
    if have and have < PIP_MINIMUM:
        rc = _run_logged([python, "-m", "pip", "install", "--disable-pip-version-check", "--upgrade", "pip"], log_path)
        if rc != 0:
            raise SetupError("pip %s is too old and could not upgrade itself (log: %s):\n%s"
                             % (".".join(map(str, have)), log_path, _log_tail(log_path)))
    return bool(have)


def install_requirements(python, find_links, log_path, dry_run_report=None, requirements=REQUIREMENTS):
    """pip install -r requirements.txt, the same command for the real and the dry run."""
    if not ensure_pip(python, log_path):
        raise SetupError("the virtual environment has no pip, and ensurepip could not add it (log: %s):\n%s"
                         % (log_path, _log_tail(log_path)))
    cmd = pip_install_command(python, find_links, requirements)
    if dry_run_report:
        cmd = [a for a in cmd if a != "--require-hashes"] + ["--dry-run", "--report", dry_run_report]
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
    installer, uv, why = which_installer(action)
    say("      installer: %s (%s)" % (installer, why if installer == "pip" or why.startswith(".venv")
                                      else "%s, %s" % (why, uv)))
    if action in ("create", "recreate"):
        if action == "recreate":
            was = pyvenv_cfg()
            say("      recreating .venv: %s%s" % (reason, " (it was Python %s, %s)" % (
                was.get("version", "?"), was.get("executable") or was.get("home", "?"))
                if "no longer runs" in reason else ""))
        say("      Python %s (%s)" % (me["version"], me["executable"]))
        create_venv(clear=(action == "recreate"), with_pip=(installer == "pip"))
    else:
        made_by = pyvenv_cfg().get("uv") and "uv" or pyvenv_cfg().get("virtualenv") and "virtualenv" or "venv"
        say("      installing requirements.txt into the existing .venv (made by %s): %s" % (made_by, reason))
    python = venv_python()
    with open(PIP_LOG, "w") as log:
        log.write("sheet05 set-up, %s\n" % time.strftime("%Y-%m-%d %H:%M:%S"))
    if installer == "pip" and action == "install" and not ensure_pip(python, PIP_LOG):
        # an adopted .venv whose Python cannot add pip (Debian without python3-venv): start afresh
        say("      recreating .venv: it has no pip and ensurepip cannot add one")
        create_venv(clear=True, with_pip=True)
        action = "recreate"
    tmp = tempfile.mkdtemp(prefix="sheet05-setup-")
    try:
        settings = pip_settings()
        find_links, source, note = torch_find_links(tmp)
        folder = None if source else local_torch_folder(settings)
        if folder:
            find_links, source = ["--find-links", folder], folder
            say("      torch's CPU build: from %s (one of pip's find-links)" % folder)
        elif source:
            say("      torch's CPU build: from TORCH_WHEELS=%s" % source)
        requirements = requirements_for(find_links, tmp)
        size = "" if action == "install" else ", about %s MB to download unless %s has them cached" % (
            "235" if sys.platform == "darwin" else "350", installer)
        if installer == "uv":
            mirrored = uv_mirror_of_pip(settings)
            if mirrored:
                say("      uv gets pip's configured indexes and find-links: %s" % " ".join(mirrored))
            say("      uv pip install -r requirements.txt%s (log: .venv/pip.log)" % size)
            env = dict(os.environ)
            cert = settings.get("cert")
            if cert and not env.get("SSL_CERT_FILE") and os.path.isfile(cert):
                env["SSL_CERT_FILE"] = cert  # pip's CA bundle (a university proxy's) for uv too
            rc = _run_logged(uv_install_command(uv, python, find_links, mirrored, requirements), PIP_LOG, env=env)
        else:
            say("      pip install -r requirements.txt%s (log: .venv/pip.log)" % size)
            rc = install_requirements(python, find_links, PIP_LOG, requirements=requirements)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if rc != 0:
        raise SetupError(install_failure(installer, PIP_LOG, source, note))
    probe = probe_venv()
    created_with = me["executable"] if action != "install" else (read_stamp() or {}).get("created_with")
    stamp = {"requirements_sha256": want, "python_version": probe["version"], "created_with": created_with,
             "installer": installer}
    with open(STAMP, "w") as f:
        json.dump(stamp, f, indent=1)
    old = os.path.join(VENV, ".requirements.sha256")  # the stamp of earlier versions
    if os.path.exists(old):
        os.remove(old)
    return python


def without_hashes(path, workdir):
    """A copy of the lock without its hashes, for the dry run: pip checks hashes only on files
    it downloads, so with them it would download every wheel (350 MB) just to plan; without
    them it reads only the metadata (PEP 658). The versions stay pinned."""
    with open(path) as f:
        text = f.read()
    text = re.sub(r"\s*\\\n\s*--hash=sha256:[0-9a-f]+", "", text)
    text = re.sub(r" --hash=sha256:[0-9a-f]+", "", text)
    text = text.replace("--find-links %s\n" % TORCH_PAGE_FILE, "--find-links %s\n" % os.path.join(ROOT, TORCH_PAGE_FILE))
    out = os.path.join(workdir, "requirements-dry-run.txt")
    with open(out, "w") as f:
        f.write(text)
    return out


def dry_run():
    """Step 1 as a plan: the same pip command with --dry-run --report in a throwaway venv
    (from the lock without its hashes: see without_hashes)."""
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
        folder = None if source else local_torch_folder(pip_settings())
        if folder:
            find_links, source = ["--find-links", folder], folder
        requirements = requirements_for(find_links, tmp)
        shown = "requirements.txt (%shashes left out: nothing is downloaded)" % (
            "torch page and " if requirements != REQUIREMENTS else "")
        requirements = without_hashes(requirements, tmp)
        report = os.path.join(tmp, "report.json")
        log_path = os.path.join(tmp, "pip.log")
        python = os.path.join(venv, "bin", "python")
        say("      $ " + " ".join([a for a in pip_install_command(".venv/bin/python", find_links, shown)
                                   if a != "--require-hashes"] + ["--dry-run", "--report", "REPORT"]))
        rc = install_requirements(python, find_links, log_path, dry_run_report=report, requirements=requirements)
        if rc != 0:
            raise SetupError("(dry run) " + install_failure("pip", log_path, source, note))
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


# --------------------------------------------------------------------------- git: notebook filter

# nbstripout, from .venv, as git's filter for *.ipynb (.gitattributes names it): git sees and
# commits the notebook without its outputs, execution counts, cell ids as editors number them,
# and the metadata that Jupyter and VS Code rewrite on every save (the kernel's name, which
# differs by editor, and language_info, which holds the Python version of each machine).
# Opening, running and saving the notebook therefore leaves `git status` clean. A relative
# path: git runs filters in the top folder of the repository, so a moved clone keeps working.
# Not "required": if .venv is broken, git still works (and prints the filter's error).
NOTEBOOK_FILTER_PYTHON = ".venv/bin/python"
NOTEBOOK_FILTER_EXTRA_KEYS = (
    "metadata.kernelspec metadata.language_info.codemirror_mode metadata.language_info.file_extension "
    "metadata.language_info.mimetype metadata.language_info.nbconvert_exporter "
    "metadata.language_info.pygments_lexer metadata.language_info.version metadata.vscode "
    "cell.metadata.jupyter.outputs_hidden"
)
NOTEBOOK_FILTER = (
    ("filter.nbstripout.clean", NOTEBOOK_FILTER_PYTHON + " -m nbstripout"),
    ("filter.nbstripout.smudge", "cat"),
    ("filter.nbstripout.extrakeys", NOTEBOOK_FILTER_EXTRA_KEYS),
    ("diff.ipynb.textconv", NOTEBOOK_FILTER_PYTHON + " -m nbstripout -t"),
)


def _git(args, root):
    return subprocess.run(["git"] + args, cwd=root, capture_output=True, text=True)


def is_git_top(root=ROOT):
    """Whether `root` is the top folder of a git clone (not a "Download ZIP" copy)."""
    if shutil.which("git") is None:
        return False
    result = _git(["rev-parse", "--show-toplevel"], root)
    return result.returncode == 0 and os.path.realpath(result.stdout.strip()) == os.path.realpath(root)


def install_notebook_filter(root=ROOT, log=say):
    """Set NOTEBOOK_FILTER in the clone's own git config (.git/config); True if it is in place.

    Does nothing outside a git clone. Changes only the keys that differ, and says so once.
    """
    if not is_git_top(root):
        return False
    changed = False
    for key, value in NOTEBOOK_FILTER:
        if _git(["config", "--local", "--get", key], root).stdout.strip() != value:
            result = _git(["config", "--local", key, value], root)
            if result.returncode != 0:
                log("      note: could not set up git's notebook filter (%s); git status may show "
                    "exercise_sheet.ipynb as changed after you save it in Jupyter"
                    % (result.stderr.strip() or "git config failed"))
                return False
            changed = True
    if changed:
        log("      git: exercise_sheet.ipynb is now compared and committed without outputs and "
            "editor metadata (nbstripout filter in .git/config), so running and saving it in "
            "Jupyter or VS Code leaves git status clean")
    from sheet05 import gitindex

    gitindex.refresh(os.path.join(root, "exercise_sheet.ipynb"))  # a save in VS Code, say
    return True


JUPYTER_HOOK_CONFIG = os.path.join("etc", "jupyter", "jupyter_server_config.py")
JUPYTER_HOOK = """\
# Written by ./export.sh (sheet05/setup.py). After Jupyter saves a notebook of the repository
# that holds this .venv, sheet05/gitindex.py refreshes git's record of it, so that `git status`
# stays clean when only outputs and editor metadata changed. It is a server extension that
# registers its hook beside any other save hook (see gitindex._load_jupyter_server_extension).
import os as _os
import sys as _sys

_repo = _os.path.dirname(_sys.prefix)
if _os.path.isfile(_os.path.join(_repo, "sheet05", "gitindex.py")):
    _sys.path.append(_repo)  # appended: every installed package keeps its precedence
    c.ServerApp.jpserver_extensions.update({"sheet05.gitindex": True})
"""


def install_jupyter_hook(venv=VENV):
    """Jupyter's post-save hook (see sheet05/gitindex.py), in .venv's own Jupyter config."""
    path = os.path.join(venv, JUPYTER_HOOK_CONFIG)
    try:
        with open(path) as f:
            if f.read() == JUPYTER_HOOK:
                return
    except OSError:
        pass
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(JUPYTER_HOOK)


# --------------------------------------------------------------------------- main


def names_problem(opts):
    """Why the build would stop for want of names (None if it would not): checked before the
    set-up, so that nobody waits minutes for a build that cannot put their names on page 1."""
    from sheet05.authors import AuthorsError, check_names

    try:
        check_names(opts["authors"], draft=opts["draft"])
    except AuthorsError as err:
        return "no names for the title page yet.\n  %s" % err
    return None


def run(opts):
    started = time.perf_counter()
    explicit = bool(os.environ.get("PYTHON"))
    if opts["dry_run"]:
        with Step(1, "Python environment, dry run (what pip would install; nothing is changed)"):
            dry_run()
        return 0
    if not opts["setup_only"]:
        authors_problem = names_problem(opts)
        if authors_problem:
            from sheet05.authors import left_as_it_was

            warn("error: %s\n%s" % (authors_problem, left_as_it_was(os.path.join(ROOT, "submission.pdf"))))
            return 1
    with Step(1, "Python environment (.venv from requirements.txt)"):
        python = step_environment(explicit)
        install_jupyter_hook()
        install_notebook_filter()
    with Step(2, "TeX toolchain (xelatex, latexmk, pandoc, LaTeX packages, Latin Modern; DejaVu from .venv)"):
        step_tex()
    with Step(3, "Course data for exercise 2 (data/lie_detection, SHA-256 verified)"):
        if run_child([python, "-m", "sheet05.data", "fetch"], cwd=ROOT) != 0:
            raise StepFailed()
    if opts["setup_only"]:
        say("set-up complete (%.1f s): .venv, TeX and the course data are ready." % (time.perf_counter() - started))
        if names_problem({"authors": None, "draft": False}):
            say("Next: set your two names in authors.txt (once), then ./export.sh builds submission.pdf.")
        else:
            say("Next: ./export.sh builds submission.pdf (names from authors.txt).")
        say("  Work in the notebook: .venv/bin/jupyter lab exercise_sheet.ipynb (or VS Code, kernel .venv)")
        say("  Run the tests: .venv/bin/python -m pytest")
        return 0
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    cmd = [python, "-m", "sheet05.export", "--first-step", "4", "--total-steps", str(TOTAL)]
    if opts["authors"]:
        cmd += ["--authors"] + opts["authors"]
    if opts["rerun"]:
        cmd.append("--rerun")
    if opts["draft"]:
        cmd.append("--draft")
    rc = run_child(cmd, cwd=ROOT, env=env)
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
        from sheet05.authors import left_as_it_was

        warn("\nInterrupted. %s What earlier steps completed is kept (.venv, the course data, the "
             "build cache); ./export.sh goes on from there."
             % left_as_it_was(os.path.join(ROOT, "draft.pdf" if opts["draft"] else "submission.pdf")))
        return 130


if __name__ == "__main__":
    sys.exit(main())
