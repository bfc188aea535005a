"""Make requirements.txt, the lock of every package, from requirements.in:

    .venv/bin/python -m sheet05.lock              # keep the other pins, re-resolve what changed
    .venv/bin/python -m sheet05.lock --upgrade    # newest versions the top-level pins allow

It wraps one `uv pip compile --universal --generate-hashes --only-binary :all:` (Python 3.11
and newer, every platform) and then checks that every target, Python 3.11-3.14 on Linux
x86_64/aarch64, macOS 14 arm64 and Windows x86_64, finds a wheel for each locked package.
Needs PyPI and PyTorch's CPU wheel page (https://download.pytorch.org/whl/cpu/torch/).

Two things uv does not do by itself, done here:

* torch's Linux CPU build is not on PyPI. The lock names a copy of the relevant part of
  PyTorch's CPU page, torch-cpu-wheels.html (the Linux wheels of the pinned "+cpu" version,
  with their SHA-256), as `--find-links`. Only that page, not the whole page: the whole page
  also lists a "+cpu" Windows wheel, which uv would take for `torch==2.13.0` (a local version
  matches it) although the lock pins PyPI's Windows wheel, and pip would read the whole page
  (about a thousand links) once per package. The copy names only torch files, so no other
  package can come from PyTorch's server (no dependency confusion), and every file is pinned by
  its hash anyway.
* uv writes no hashes for files found through `--find-links` (astral-sh/uv#3874): they are
  added here from the page's `#sha256=` fragments. Every requirement of the lock must end up
  with hashes, or this command fails.

Without access to PyTorch's page, give a copy: `--torch-page URL` (a mirror of that page), or
`--torch-page torch-cpu-wheels.html --torch-metadata WHEEL`, which serves the committed list
(names and hashes) locally with the METADATA of one local +cpu wheel of the pinned version,
so that uv downloads no wheel (the +cpu wheels of one version share their metadata).
"""

import argparse
import functools
import hashlib
import html
import http.server
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.parse
import urllib.request
import zipfile
from html.parser import HTMLParser

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQUIREMENTS_IN = os.path.join(ROOT, "requirements.in")
LOCK = os.path.join(ROOT, "requirements.txt")
TORCH_PAGE_FILE = "torch-cpu-wheels.html"  # next to the lock, which names it by this relative path
TORCH_PAGE = "https://download.pytorch.org/whl/cpu/torch/"
TORCH_FILES = "https://download.pytorch.org/whl/cpu/"  # where that page's links point
PYPI = "https://pypi.org/simple"
COMMAND = "python -m sheet05.lock"
LOWEST_PYTHON = "3.11"
PYTHONS = ("3.11", "3.12", "3.13", "3.14")
# uv's names of the target platforms (with MACOSX_DEPLOYMENT_TARGET=14.0 for the Mac)
PLATFORMS = {"Linux x86_64": "x86_64-manylinux_2_28", "Linux aarch64": "aarch64-manylinux_2_28",
             "macOS arm64": "aarch64-apple-darwin", "Windows x86_64": "x86_64-pc-windows-msvc"}
WHEEL = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)-(?P<tags>.+)\.whl$")


class LockError(Exception):
    pass


# --------------------------------------------------------------------------- requirements


def top_level_pins(path=None):
    """{(name, marker): version} of the `name==version [; marker]` lines of requirements.in."""
    path = path or REQUIREMENTS_IN
    pins = {}
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line or line.startswith("-"):
                continue
            match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;]+)\s*(?:;\s*(.*))?$", line)
            if not match:
                raise LockError("%s: every line must pin one version (name==version), not %r" % (path, line))
            pins[(normalize(match.group(1)), normalize_marker(match.group(3) or ""))] = match.group(2)
    return pins


def lock_entries(path=None):
    """[(name, version, marker, [hashes])] of a lock made by this module."""
    entries = []
    with open(path or LOCK) as f:
        text = f.read()
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        first = block.split("\n", 1)[0]
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]*?))?\s*\\?$", first)
        if match:
            entries.append((normalize(match.group(1)), match.group(2), normalize_marker(match.group(3) or ""),
                            re.findall(r"--hash=sha256:([0-9a-f]{64})", block)))
    return entries


def normalize(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def normalize_marker(marker):
    return re.sub(r"\s+", " ", marker.replace('"', "'")).strip()


def disagreements(requirements_in=None, lock=None):
    """Why the lock does not match requirements.in ([] if it does): a top-level pin that the
    lock lacks or locks at another version, or a locked package without hashes."""
    requirements_in, lock = requirements_in or REQUIREMENTS_IN, lock or LOCK
    problems = []
    locked = {}
    for name, version, marker, hashes in lock_entries(lock):
        locked.setdefault(name, []).append((version, marker))
        if not hashes:
            problems.append("%s==%s has no hashes in %s" % (name, version, os.path.basename(lock)))
    for (name, marker), version in sorted(top_level_pins(requirements_in).items()):
        versions = [v for v, m in locked.get(name, []) if not marker or m == marker or not m]
        if version not in versions:
            problems.append("%s pins %s==%s%s, the lock has %s" % (
                os.path.basename(requirements_in), name, version, " ; " + marker if marker else "",
                ", ".join("%s (%s)" % (v, m or "all") for v, m in locked.get(name, [])) or "nothing"))
    return problems


# --------------------------------------------------------------------------- PyTorch's page


class _Links(HTMLParser):
    def __init__(self):
        HTMLParser.__init__(self)
        self.links = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs)


def page_links(text):
    parser = _Links()
    parser.feed(text)
    return parser.links


def linux_cpu_wheels(text, base_url, version, files_url=None):
    """[(file name, URL, sha256, attributes, URL on this page)] of the Linux wheels of
    torch==`version` on a wheel page. `files_url`: where the real files are, if the page is a
    mirror (else they are where the page links)."""
    wheels = []
    for attrs in page_links(text):
        url = urllib.parse.urljoin(base_url, attrs["href"])
        path, _, fragment = url.partition("#")
        name = urllib.parse.unquote(path.rsplit("/", 1)[-1])
        match = WHEEL.match(name)
        if not match or match.group("name") != "torch" or match.group("version") != version:
            continue
        if "manylinux" not in match.group("tags") and "linux_" not in match.group("tags"):
            continue
        digest = re.search(r"sha256=([0-9a-f]{64})", fragment)
        if not digest:
            raise LockError("%s lists %s without its SHA-256 (#sha256=...)" % (base_url, name))
        real = (files_url + urllib.parse.quote(name)) if files_url else path
        wheels.append((name, real, digest.group(1), attrs, path))
    return sorted(wheels)


def torch_page_html(wheels, source, where_listed=False):
    """The page that the lock names: links to PyTorch's files, with their hashes.
    `where_listed`: link where the source page links instead, with its PEP 658 attributes
    (the page that uv reads while it makes the lock)."""
    rows = []
    for name, url, digest, attrs, listed in wheels:
        extra = "".join(' %s="%s"' % (key, html.escape(attrs[key], quote=True))
                        for key in ("data-dist-info-metadata", "data-core-metadata") if where_listed and attrs.get(key))
        rows.append('<a href="%s#sha256=%s" data-requires-python="%s"%s>%s</a><br>' % (
            html.escape(listed if where_listed else url, quote=True), digest,
            html.escape(attrs.get("data-requires-python") or ">=3.10"), extra, html.escape(name)))
    return ("<!DOCTYPE html>\n<!-- Made by `%s` from %s: the Linux wheels of PyTorch's CPU build\n"
            "     that requirements.txt pins (pip and uv read this file; do not edit it). -->\n"
            "<html><head><title>torch, CPU build, Linux</title></head><body>\n%s\n</body></html>\n"
            % (COMMAND, source, "\n".join(rows)))


def fetch(url):
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read().decode(response.headers.get_content_charset() or "utf-8"), response.geturl()


class StandIn(object):
    """A local copy of PyTorch's page for uv: the listed names with their hashes, and one
    wheel's METADATA as every wheel's PEP 658 metadata (so uv downloads no wheel)."""

    def __init__(self, wheels, metadata_wheel, version):
        with zipfile.ZipFile(metadata_wheel) as z:
            names = [n for n in z.namelist() if re.match(r"[^/]+\.dist-info/METADATA$", n)]
            metadata = z.read(names[0])
        have = re.search(rb"^Version: (\S+)", metadata, re.M).group(1).decode()
        if have != version:
            raise LockError("%s is torch %s, not %s" % (metadata_wheel, have, version))
        self.dir = tempfile.mkdtemp(prefix="sheet05-torch-page-")
        digest = hashlib.sha256(metadata).hexdigest()
        rows = []
        for name, _, sha, attrs, _ in wheels:
            with open(os.path.join(self.dir, name + ".metadata"), "wb") as f:
                f.write(metadata)
            rows.append('<a href="%s#sha256=%s" data-requires-python="%s" data-dist-info-metadata="sha256=%s" '
                        'data-core-metadata="sha256=%s">%s</a><br>' % (
                            urllib.parse.quote(name), sha, html.escape(attrs.get("data-requires-python") or ">=3.10"),
                            digest, digest, html.escape(name)))
        with open(os.path.join(self.dir, "index.html"), "w") as f:
            f.write("<html><body>\n%s\n</body></html>\n" % "\n".join(rows))
        handler = functools.partial(_QuietHandler, directory=self.dir)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = "http://127.0.0.1:%d/" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        shutil.rmtree(self.dir, ignore_errors=True)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


# --------------------------------------------------------------------------- uv


def uv_command():
    """uv from this environment (it is in the lock), else from the PATH."""
    if subprocess.run([sys.executable, "-m", "uv", "--version"], capture_output=True).returncode == 0:
        return [sys.executable, "-m", "uv"]
    if shutil.which("uv"):
        return [shutil.which("uv")]
    raise LockError("uv is missing: %s -m pip install uv" % sys.executable)


def clean_env():
    """No uv or pip settings of this machine: the lock is made against PyPI alone."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_"))}
    env["UV_NO_CONFIG"] = "1"
    env["UV_PYTHON_DOWNLOADS"] = "never"
    env["MACOSX_DEPLOYMENT_TARGET"] = "14.0"
    return env


def compile_lock(uv, workdir, page_url, index_url, upgrade):
    """uv pip compile, in `workdir` (requirements.in and the current lock copied there)."""
    cmd = uv + ["pip", "compile", "requirements.in", "--output-file", "requirements.txt", "--universal",
                "--python-version", LOWEST_PYTHON, "--generate-hashes", "--only-binary", ":all:",
                "--emit-build-options", "--index-url", index_url, "--find-links", page_url,
                "--custom-compile-command", COMMAND, "--no-config", "--quiet",
                # this interpreter (markers come from the options above): uv would otherwise look
                # for a Python of that version, and try to download one
                "--python", sys.executable]
    if upgrade:
        cmd.append("--upgrade")
    result = subprocess.run(cmd, cwd=workdir, env=clean_env(), capture_output=True, text=True)
    if result.returncode != 0:
        raise LockError("uv pip compile failed:\n%s" % (result.stderr or result.stdout))
    with open(os.path.join(workdir, "requirements.txt")) as f:
        return f.read()


def finish_lock(text, wheels):
    """uv's output with the page named (relative to the lock) and torch's hashes added."""
    lines = [line for line in text.splitlines() if not line.startswith(("--find-links", "--index-url"))]
    header = 0
    while header < len(lines) and lines[header].startswith("#"):
        header += 1
    note = ["# Linux: torch's CPU build from PyTorch's CPU wheel page (its Linux files are listed, with",
            "# their SHA-256, in %s); every other package, and torch on macOS and Windows," % TORCH_PAGE_FILE,
            "# from PyPI. Install: uv pip install -r requirements.txt (or pip install -r ...)."]
    lines[header:header] = note + ["--find-links " + TORCH_PAGE_FILE]
    by_version = {}
    for name, _, digest, _, _ in wheels:
        by_version.setdefault(WHEEL.match(name).group("version"), []).append(digest)
    out = []
    in_torch = False
    for line in lines:
        match = re.match(r"torch==(\S+?)( ; [^\\]*?)?( \\)?$", line)
        if match and match.group(1) in by_version:
            # the page's hashes (uv may have kept those of the old lock: they are replaced)
            digests = sorted(set(by_version[match.group(1)]))
            out.append(line.rstrip(" \\") + " \\")
            out += ["    --hash=sha256:%s%s" % (d, " \\" if i < len(digests) - 1 else "") for i, d in enumerate(digests)]
            in_torch = True
        elif in_torch and line.lstrip().startswith("--hash="):
            continue
        else:
            in_torch = False
            out.append(line)
    return "\n".join(out) + "\n"


def check_targets(uv, workdir, lock_text, page_url, index_url, log):
    """Each target finds a wheel for every locked package, and needs no package the lock lacks."""
    locked = {name for name, _, _, _ in lock_entries_text(lock_text)}
    check = os.path.join(workdir, "check.txt")
    with open(check, "w") as f:
        f.write(lock_text.replace("--find-links " + TORCH_PAGE_FILE, "--find-links " + page_url))
    counts = {}
    for label, platform in PLATFORMS.items():
        for python in PYTHONS:
            cmd = uv + ["pip", "compile", check, "--python-platform", platform, "--python-version", python,
                        "--only-binary", ":all:", "--index-url", index_url, "--no-header", "--no-annotate",
                        "--no-config", "--quiet", "--python", sys.executable]
            result = subprocess.run(cmd, cwd=workdir, env=clean_env(), capture_output=True, text=True)
            if result.returncode != 0:
                raise LockError("the lock does not install on %s with Python %s:\n%s"
                                % (label, python, result.stderr.strip()))
            names = {normalize(line.split("==")[0]) for line in result.stdout.splitlines()
                     if "==" in line and not line.startswith((" ", "#", "-"))}
            if names - locked:
                raise LockError("on %s with Python %s the lock lacks %s" % (label, python, ", ".join(sorted(names - locked))))
            counts[(label, python)] = len(names)
    for label in PLATFORMS:
        log("  %-15s %s packages (Python %s)" % (label, "/".join(str(counts[(label, p)]) for p in PYTHONS),
                                                "/".join(PYTHONS)))


def lock_entries_text(text):
    handle, path = tempfile.mkstemp(suffix=".txt")
    with os.fdopen(handle, "w") as f:
        f.write(text)
    try:
        return lock_entries(path)
    finally:
        os.remove(path)


# --------------------------------------------------------------------------- main


def torch_version(requirements_in=None):
    for (name, marker), version in top_level_pins(requirements_in).items():
        if name == "torch" and "linux" in marker and "!=" not in marker:
            return version
    raise LockError("requirements.in pins no torch for Linux (torch==...+cpu ; sys_platform == \"linux\")")


def make_lock(torch_page=TORCH_PAGE, torch_metadata=None, index_url=PYPI, upgrade=False, log=print,
              root=None, files_url=TORCH_FILES):
    """requirements.txt and torch-cpu-wheels.html in `root` (the repository) from its
    requirements.in. `files_url`: where the files of a mirror page really are (PyTorch's)."""
    root = root or ROOT
    requirements_in, lock = os.path.join(root, "requirements.in"), os.path.join(root, "requirements.txt")
    version = torch_version(requirements_in)
    uv = uv_command()
    standin = None
    workdir = tempfile.mkdtemp(prefix="sheet05-lock-")
    try:
        if re.match(r"(?i)https?://", torch_page):
            text, base = fetch(torch_page)
        else:
            with open(os.path.join(root, torch_page)) as f:
                text, base = f.read(), urllib.parse.urljoin("file:", urllib.request.pathname2url(os.path.abspath(torch_page)))
        real = torch_page.rstrip("/") == TORCH_PAGE.rstrip("/")
        # links of a mirror point to the mirror; the lock's page must point to PyTorch's server
        wheels = linux_cpu_wheels(text, base, version, files_url=None if real else files_url)
        if not wheels:
            raise LockError("%s lists no Linux wheel of torch %s" % (torch_page, version))
        log("torch %s for Linux: %d wheels listed on %s" % (version, len(wheels), torch_page))
        if torch_metadata:
            standin = StandIn(wheels, torch_metadata, version)
            page_url = standin.url
        else:  # the Linux wheels only, linked where the page links them
            page_url = os.path.join(workdir, "torch-page.html")
            with open(page_url, "w") as f:
                f.write(torch_page_html(wheels, torch_page, where_listed=True))
        shutil.copyfile(requirements_in, os.path.join(workdir, "requirements.in"))
        if os.path.exists(lock):  # uv keeps its pins (less the page, which uv would look for there)
            with open(lock) as f:
                kept = [line for line in f if not line.startswith("--find-links")]
            with open(os.path.join(workdir, "requirements.txt"), "w") as f:
                f.writelines(kept)
        log("uv pip compile --universal --generate-hashes (Python >= %s) ..." % LOWEST_PYTHON)
        lock_text = finish_lock(compile_lock(uv, workdir, page_url, index_url, upgrade), wheels)
        log("checking every target (Python %s on %s) ..." % ("/".join(PYTHONS), ", ".join(PLATFORMS)))
        check_targets(uv, workdir, lock_text, page_url, index_url, log)
        missing = [name for name, _, _, hashes in lock_entries_text(lock_text) if not hashes]
        if missing:
            raise LockError("no hashes for %s" % ", ".join(missing))
    finally:
        if standin:
            standin.close()
        shutil.rmtree(workdir, ignore_errors=True)
    with open(os.path.join(root, TORCH_PAGE_FILE), "w") as f:
        f.write(torch_page_html(wheels, TORCH_PAGE))
    with open(lock, "w") as f:
        f.write(lock_text)
    problems = disagreements(requirements_in, lock)
    if problems:
        raise LockError("\n  ".join(["the new lock disagrees with requirements.in:"] + problems))
    names = {name for name, _, _, _ in lock_entries(lock)}
    log("wrote requirements.txt (%d packages, all with SHA-256 hashes) and %s" % (len(names), TORCH_PAGE_FILE))
    return len(names)


def main(argv=None):
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    parser.add_argument("--upgrade", action="store_true", help="newest versions the pins of requirements.in allow")
    parser.add_argument("--torch-page", default=TORCH_PAGE,
                        help="PyTorch's CPU wheel page, a mirror of it, or a local copy such as %s" % TORCH_PAGE_FILE)
    parser.add_argument("--torch-metadata", metavar="WHEEL",
                        help="a local torch +cpu wheel of the pinned version: serve --torch-page locally "
                             "with its metadata (when PyTorch's server cannot be reached)")
    parser.add_argument("--index-url", default=PYPI, help="PyPI or a mirror of it (default %(default)s)")
    args = parser.parse_args(argv)
    try:
        make_lock(args.torch_page, args.torch_metadata, args.index_url, args.upgrade)
    except LockError as err:
        print("error: %s" % err, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
