"""Course data for exercise 2: fetch, verify and load the LLaMA-3 activations.

The files are the course's own (sciai-lab/mlph-25w, folder sheet05/data/lie_detection,
pinned commit below). They are never committed here: `fetch` fills
``data/lie_detection/`` from, in this order,

1. what is already there (kept only if its SHA-256 matches the manifest),
2. a local mirror named by the environment variable ``LIE_DETECTION_MIRROR``,
3. the public raw URL at the pinned commit.

Every file is checked against ``data/lie_detection.sha256``. A file is written to a
temporary name in the target folder and renamed only once its checksum matched, so an
interrupted fetch never leaves a half-written file under a real name.

Command line: ``python -m sheet05.data fetch`` or ``python -m sheet05.data verify``.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import shutil
import ssl
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "data" / "lie_detection"
MANIFEST = REPO_ROOT / "data" / "lie_detection.sha256"

COURSE_REPO = "sciai-lab/mlph-25w"
COURSE_COMMIT = "a722451a9567bb9a9da7dac33ee20690a8a26e04"
RAW_BASE = (
    f"https://raw.githubusercontent.com/{COURSE_REPO}/{COURSE_COMMIT}"
    "/sheet05/data/lie_detection"
)
MIRROR_ENV = "LIE_DETECTION_MIRROR"
DATASETS = ("cities", "neg_cities", "sp_en_trans", "neg_sp_en_trans")
# What the appendix of the PDF prints: the loader; no result depends on how a file arrived.
__appendix__ = ["_load_tensor", "load_dataset", "split"]


class DataError(RuntimeError):
    """A data file is missing, corrupt, or cannot be obtained."""


# --------------------------------------------------------------------------- checksums


def read_manifest(path: Path = MANIFEST) -> dict[str, str]:
    """Map each relative path of the manifest to its expected SHA-256 (hex)."""
    entries = {}
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        match = re.fullmatch(r"([0-9a-f]{64}) [ *](\S+)", line.strip())
        if not match:
            raise DataError(f"{path}:{lineno}: not a 'sha256  path' line: {line!r}")
        entries[match.group(2)] = match.group(1)
    return entries


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def problems(data_dir: Path = DATA_DIR, manifest: dict[str, str] | None = None) -> list[str]:
    """Describe every manifest file under `data_dir` that is missing or mismatching."""
    manifest = read_manifest() if manifest is None else manifest
    found = []
    for rel, expected in manifest.items():
        path = Path(data_dir) / rel
        if not path.is_file():
            found.append(f"missing: {path}")
        elif (actual := sha256_of(path)) != expected:
            found.append(
                f"checksum mismatch: {path} (size {path.stat().st_size} bytes, "
                f"sha256 {actual[:12]}..., expected {expected[:12]}...)"
            )
    return found


def verify(data_dir: Path = DATA_DIR) -> None:
    """Raise DataError naming every missing or corrupt file; return quietly otherwise."""
    bad = problems(data_dir)
    if bad:
        raise DataError(
            "the lie-detection data are incomplete or corrupt:\n  "
            + "\n  ".join(bad)
            + "\nRun `.venv/bin/python -m sheet05.data fetch` (set "
            f"{MIRROR_ENV} to a local copy when offline)."
        )


# --------------------------------------------------------------------------- fetching


def _write_verified(dest: Path, expected: str, chunks, origin: str) -> None:
    """Stream `chunks` to a temporary file next to `dest`; rename only if the hash matches."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                digest.update(chunk)
                f.write(chunk)
        if digest.hexdigest() != expected:
            raise DataError(
                f"refused {origin}: sha256 {digest.hexdigest()[:12]}... does not match the "
                f"manifest ({expected[:12]}...); the file is corrupt, truncated or a "
                "different version. Replace it with the course's file at commit "
                f"{COURSE_COMMIT}."
            )
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _file_chunks(path: Path):
    with open(path, "rb") as f:
        yield from iter(lambda: f.read(1 << 20), b"")


def _url_chunks(url: str, timeout: float = 60.0):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        yield from iter(lambda: response.read(1 << 20), b"")


CERTIFICATE_ADVICE = (
    "the server's TLS certificate could not be verified (CERTIFICATE_VERIFY_FAILED). "
    "This is not a network problem: this Python finds no list of trusted certificate "
    "authorities. On macOS with Python from python.org, run its \"Install Certificates.command\" "
    "once (Finder: Applications > Python 3.x; or: open \"/Applications/Python 3.12/Install "
    "Certificates.command\" for your version). Elsewhere: `.venv/bin/python -m pip install "
    "certifi` and `export SSL_CERT_FILE=\"$(.venv/bin/python -m certifi)\"`, or install your "
    "system's ca-certificates package (behind a proxy that inspects TLS, point SSL_CERT_FILE at "
    f"its certificate). Then run the command again; or point {MIRROR_ENV} at a local copy."
)


def _certificate_failure(err: BaseException) -> bool:
    """Whether `err` (often a URLError wrapping an SSL error) is a failed certificate check."""
    reason = getattr(err, "reason", None)
    for candidate in (err, reason):
        if isinstance(candidate, ssl.SSLCertVerificationError):
            return True
    return "CERTIFICATE_VERIFY_FAILED" in f"{err} {reason}"


def fetch(
    data_dir: Path = DATA_DIR,
    mirror: str | Path | None = None,
    allow_download: bool = True,
    log=print,
    manifest: dict[str, str] | None = None,
) -> dict[str, int]:
    """Fill `data_dir` with every manifest file, verified. Returns counts per origin.

    `mirror` defaults to the environment variable LIE_DETECTION_MIRROR; `manifest` (path ->
    sha256) to data/lie_detection.sha256. A file already in
    place is kept only if its checksum matches; otherwise it is replaced (atomically) from
    the mirror or the public URL. Any file that cannot be obtained intact raises DataError
    naming it; files fetched before that stay (they are verified).
    """
    data_dir = Path(data_dir)
    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV) or None
    mirror = Path(mirror).expanduser().resolve() if mirror else None
    if mirror is not None and not mirror.is_dir():
        raise DataError(f"{MIRROR_ENV}={mirror} is not a directory; unset it or fix the path")
    counts = {"present": 0, "mirror": 0, "download": 0}
    manifest = read_manifest() if manifest is None else manifest
    for rel, expected in manifest.items():
        dest = data_dir / rel
        if dest.is_file():
            if sha256_of(dest) == expected:
                counts["present"] += 1
                continue
            log(f"  {dest} fails its checksum: fetching it again")
        if mirror is not None:
            source = mirror / rel
            if not source.is_file():
                raise DataError(f"the mirror {mirror} has no file {rel}")
            _write_verified(dest, expected, _file_chunks(source), origin=str(source))
            counts["mirror"] += 1
        elif allow_download:
            url = f"{RAW_BASE}/{rel}"
            try:
                _write_verified(dest, expected, _url_chunks(url), origin=url)
            except OSError as err:  # urllib's URLError is an OSError
                if _certificate_failure(err):
                    raise DataError(f"could not download {url}: {CERTIFICATE_ADVICE}") from err
                raise DataError(
                    f"could not download {url}: {err}. Offline? Point {MIRROR_ENV} at a "
                    "local copy of the course's sheet05/data/lie_detection folder."
                ) from err
            counts["download"] += 1
        else:
            raise DataError(f"missing {dest}, and no {MIRROR_ENV} and no download allowed")
    return counts


# --------------------------------------------------------------------------- loading


@dataclass
class Dataset:
    """Activations `X` (n, d) float32, labels `y` (n,) int (1 = true), and the statements."""

    name: str
    X: np.ndarray
    y: np.ndarray
    statements: list[str]


def _chunk_index(path: Path) -> int:
    return int(path.stem.rsplit("_", 1)[1])


def _load_tensor(path: Path):
    import pickle

    import torch

    try:
        # The files were saved from a GPU (map to CPU) and are pickles: weights_only=True
        # lets torch refuse anything but tensors instead of running arbitrary code.
        tensor = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as err:
        raise DataError(f"refused {path}: not a plain tensor file ({err})") from err
    if not isinstance(tensor, torch.Tensor) or tensor.ndim != 2:
        raise DataError(f"refused {path}: expected a 2-D tensor, got {type(tensor).__name__}")
    return tensor.float().numpy()


def load_dataset(
    name: str,
    data_dir: Path = DATA_DIR,
    family: str = "Llama3",
    size: str = "8B",
    model_type: str = "chat",
    layer: int = 12,
    check_manifest: bool = True,
) -> Dataset:
    """Load one dataset in the course layout ``acts/<family>/<size>/<type>/<name>/layer_<L>_<i>.pt``.

    Rows of the chunk files, sorted by their start index i, must match the rows of
    ``datasets/<name>.csv`` one to one. With `check_manifest`, every file listed in the
    manifest is checksum-verified first (files of other layers or models are not listed
    and are only structurally checked).
    """
    data_dir = Path(data_dir)
    csv_path = data_dir / "datasets" / f"{name}.csv"
    act_dir = data_dir / "acts" / family / size / model_type / name
    if not csv_path.is_file():
        raise DataError(f"missing {csv_path}; run `python -m sheet05.data fetch`")
    chunks = sorted(act_dir.glob(f"layer_{layer}_*.pt"), key=_chunk_index)
    if not chunks:
        raise DataError(f"no files {act_dir}/layer_{layer}_*.pt; run `python -m sheet05.data fetch`")
    if check_manifest:
        manifest = read_manifest()
        for path in [csv_path, *chunks]:
            rel = path.relative_to(data_dir).as_posix()
            if rel in manifest and sha256_of(path) != manifest[rel]:
                raise DataError(f"refused {path}: checksum mismatch; run `python -m sheet05.data fetch`")

    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    statements = [row["statement"] for row in rows]
    y = np.array([int(row["label"]) for row in rows])

    parts, expected_start = [], 0
    for path in chunks:
        if _chunk_index(path) != expected_start:
            raise DataError(f"{path}: chunk starts at row {_chunk_index(path)}, expected {expected_start}")
        part = _load_tensor(path)
        parts.append(part)
        expected_start += len(part)
    X = np.concatenate(parts)
    if len(X) != len(rows):
        raise DataError(f"{act_dir}: {len(X)} activation rows but {len(rows)} rows in {csv_path}")
    if not np.isfinite(X).all():
        raise DataError(f"{act_dir}: activations contain NaN or inf")
    if not set(np.unique(y)) <= {0, 1}:
        raise DataError(f"{csv_path}: labels must be 0 or 1")
    return Dataset(name, X, y, statements)


def split(X: np.ndarray, y: np.ndarray, seed: int, test_size: float = 0.2):
    """Stratified train/test split driven only by `seed` (no global RNG is read or changed).

    The course's DataManager calls torch.manual_seed, which silently re-seeds every later
    model initialisation; scikit-learn's random_state uses its own generator instead.
    """
    from sklearn.model_selection import train_test_split

    return train_test_split(X, y, test_size=test_size, random_state=seed, stratify=y)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv else "fetch"
    try:
        if command == "fetch":
            counts = fetch()
            verify()
            print(
                f"data ok: {sum(counts.values())} files in {DATA_DIR} "
                f"({counts['present']} already there, {counts['mirror']} from mirror, "
                f"{counts['download']} downloaded), all checksums match"
            )
        elif command == "verify":
            verify()
            print(f"data ok: all {len(read_manifest())} files in {DATA_DIR} match the manifest")
        elif command == "clean":
            shutil.rmtree(DATA_DIR, ignore_errors=True)
        else:
            print("usage: python -m sheet05.data [fetch|verify|clean]", file=sys.stderr)
            return 2
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
