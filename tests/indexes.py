"""Stand-ins for PyPI and for PyTorch's CPU wheel page, served on 127.0.0.1, built from small
fake wheels or from the metadata of the packages installed in .venv (no download)."""

from __future__ import annotations

import base64
import hashlib
import html
import os
import re
import shutil
import sys
import zipfile
from pathlib import Path

from conftest import REPO


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wheel(folder: Path, name: str, version: str, tag: str = "py3-none-any", requires: tuple = (),
          payload: bytes = b"") -> Path:
    """A small valid wheel `name-version-tag.whl` with the given Requires-Dist lines."""
    module = name.replace("-", "_")
    dist = f"{module}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires)
    files = {
        f"{module}/__init__.py": b"# " + payload + b"\n",
        f"{dist}/METADATA": metadata.encode(),
        f"{dist}/WHEEL": f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: {tag}\n".encode(),
    }
    record = [f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
              f"{len(data)}" for path, data in files.items()] + [f"{dist}/RECORD,,"]
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{module}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w") as z:
        for member, data in files.items():
            z.writestr(member, data)
    return path


def link(name: str, href: str, digest: str | None, metadata: bytes | None = None) -> str:
    attrs = ""
    if metadata is not None:
        m = hashlib.sha256(metadata).hexdigest()
        attrs = f' data-dist-info-metadata="sha256={m}" data-core-metadata="sha256={m}"'
    fragment = f"#sha256={digest}" if digest else ""
    return f'<a href="{html.escape(href + fragment, quote=True)}"{attrs}>{html.escape(name)}</a><br>'


def write_page(folder: Path, links: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "index.html").write_text("<!DOCTYPE html><html><body>\n" + "\n".join(links) + "\n</body></html>\n")


def flat_page(folder: Path) -> None:
    """index.html listing the wheels of `folder` with their hashes (like PyTorch's page)."""
    write_page(folder, [link(w.name, w.name.replace("+", "%2B"), sha256(w)) for w in sorted(folder.glob("*.whl"))])


def simple_index(root: Path, files: list[Path]) -> None:
    """root/simple/<project>/index.html (PEP 503) for wheels in root/files."""
    by_project: dict[str, list[Path]] = {}
    for w in files:
        by_project.setdefault(normalize(w.name.split("-")[0]), []).append(w)
    for project, wheels in by_project.items():
        write_page(root / "simple" / project, [link(w.name, f"../../files/{w.name}".replace("+", "%2B"), sha256(w))
                                               for w in sorted(wheels)])


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# --------------------------------------------------------------------------- from .venv


def installed_metadata(venv: Path = REPO / ".venv") -> dict:
    """{normalized name: (version, METADATA bytes, wheel tags)} of the packages in `venv`."""
    found = {}
    for site in venv.glob("lib/python3*/site-packages"):
        for info in site.glob("*.dist-info"):
            meta = (info / "METADATA").read_bytes()
            name = re.search(rb"^Name: (\S+)", meta, re.M).group(1).decode()
            version = re.search(rb"^Version: (\S+)", meta, re.M).group(1).decode()
            tags = re.findall(r"^Tag: (\S+)", (info / "WHEEL").read_text(), re.M) if (info / "WHEEL").exists() else []
            found[normalize(name)] = (version, meta, tags)
    return found


def wheel_name(name: str, version: str, tags: list[str]) -> str:
    """The file name of a wheel from its dist-info tags (compressed tag sets joined with '.')."""
    pythons, abis, platforms = ([], [], [])
    for tag in tags:
        p, a, pl = tag.split("-")
        for seq, part in ((pythons, p), (abis, a), (platforms, pl)):
            if part not in seq:
                seq.append(part)
    return f"{name.replace('-', '_')}-{version}-{'.'.join(pythons)}-{'.'.join(abis)}-{'.'.join(platforms)}.whl"


def stub_wheel(path: Path, metadata: bytes) -> None:
    """A wheel at `path` that holds only its dist-info (the given METADATA): what a dry run
    may download (pip 23 does, after resolving from the PEP 658 metadata) but never installs."""
    name, version = path.name.split("-")[:2]
    dist = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{dist}/METADATA", metadata)
        z.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{dist}/RECORD", f"{dist}/METADATA,,\n{dist}/WHEEL,,\n{dist}/RECORD,,\n")


def wheel_of_installed(name: str, folder: Path) -> Path | None:
    """A real wheel of the distribution `name` as it is installed beside this interpreter (the
    files its RECORD lists, scripts outside site-packages left out), or None if it is not."""
    from importlib import metadata

    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None
    info = next(f for f in dist.files if f.name == "METADATA").parent.as_posix()
    files = [f for f in dist.files if not f.as_posix().startswith("..") and f.suffix != ".pyc"
             and f.name != "RECORD" and f.locate().is_file()]
    tags = re.findall(r"^Tag: (\S+)", dist.read_text("WHEEL") or "Tag: py3-none-any", re.M)
    path = folder / wheel_name(normalize(name), dist.version, tags)
    folder.mkdir(parents=True, exist_ok=True)
    record = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for f in files:
            data = f.locate().read_bytes()
            z.writestr(f.as_posix(), data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{f.as_posix()},sha256={digest},{len(data)}")
        z.writestr(f"{info}/RECORD", "\n".join(record + [f"{info}/RECORD,,"]) + "\n")
    return path


def metadata_index(root: Path, packages: dict, skip: set = frozenset(), real: tuple = ()) -> None:
    """A PyPI stand-in that has every package of `packages` (installed_metadata) as a wheel
    link with PEP 658 metadata and a stub wheel (dist-info only) behind it: enough for a
    resolver's dry run. The wheels in `real` (wheel_of_installed) are served as they are, for
    what an installer installs for real during a dry run (the set-up upgrades an old pip)."""
    for path in real:
        project = normalize(path.name.split("-")[0])
        folder = root / "simple" / project
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, folder / path.name)
        write_page(folder, [link(path.name, path.name, sha256(path))])
    for project, (version, meta, tags) in packages.items():
        if project in skip or not tags or (root / "simple" / project).exists():
            continue
        name = wheel_name(project, version, tags)
        folder = root / "simple" / project
        folder.mkdir(parents=True, exist_ok=True)
        (folder / (name + ".metadata")).write_bytes(meta)
        stub_wheel(folder / name, meta)
        write_page(folder, [link(name, name.replace("+", "%2B"), None, meta)])


def cpu_page_from_metadata(folder: Path, page: Path = REPO / "torch-cpu-wheels.html", metadata: bytes = b"") -> list:
    """PyTorch's CPU page stand-in for dry runs: the names of the committed torch-cpu-wheels.html,
    links to stub wheels in this folder, and the installed torch's METADATA as PEP 658 metadata."""
    names = re.findall(r'href="[^"]*/(torch-[^"#]+\.whl)#sha256=([0-9a-f]{64})"', page.read_text())
    links = []
    folder.mkdir(parents=True, exist_ok=True)
    for quoted, digest in names:
        name = quoted.replace("%2B", "+")
        (folder / (name + ".metadata")).write_bytes(metadata)  # the server unquotes %2B
        stub_wheel(folder / name, metadata)
        links.append(link(name, quoted, None, metadata))  # a stub: the real file's hash would not match
    write_page(folder, links)
    return [n for n, _ in names]


def isolated_env(**extra) -> dict:
    """No pip or uv configuration of this machine, as on a laptop whose only index is PyPI."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "VIRTUAL_ENV"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["UV_NO_CONFIG"] = "1"
    env.update(extra)
    return env


def this_python_tag() -> str:
    return "cp%d%d" % sys.version_info[:2]
