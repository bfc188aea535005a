"""Replace the Linux torch of a copy's lock by PyPI's build, pinned by hash (platform matrix).

The lock pins PyTorch's CPU build on Linux (torch==2.13.0+cpu, from PyTorch's own page). Where
that page is out of reach and no CPU wheel for the copy's Python lies on disk, the matrix tests
the copy with PyPI's torch==2.13.0 instead: on Linux the CUDA build, which needs CUDA packages
that the lock does not pin. This resolves them with uv against PyPI for that Python and
platform, with the lock's own pins as constraints, and writes into the copy's requirements.txt:
the lock without the +cpu entry and its CPU page, plus PyPI's torch and the packages it adds,
each with its SHA-256, so that `--require-hashes` installs still check every file.

    python scripts/pin_pypi_torch.py COPY/requirements.txt 3.13 [x86_64|aarch64]

Prints the packages it added. Only ever run on a tested copy, never on the repository's lock.
"""

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

TORCH = "2.13.0"


def entries(text: str) -> dict[str, str]:
    """{normalized name: its block of lines} of a uv-written lock (options and comments dropped)."""
    blocks = {}
    for block in re.split(r"\n(?=\S)", text):
        if re.match(r"[A-Za-z0-9]", block):
            name = re.split(r"[=<>!~; ]", block, maxsplit=1)[0]
            blocks.setdefault(re.sub(r"[-_.]+", "-", name).lower(), []).append(block.rstrip("\n"))
    return {name: "\n".join(found) for name, found in blocks.items()}


def pypi_torch_pins(lock: str, python: str, machine: str, uv: str) -> str:
    """uv's lock of torch==TORCH for `python` on Linux `machine`, constrained by `lock`."""
    others = "\n".join(block for name, block in entries(lock).items() if name != "torch")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "in.txt").write_text(f"torch=={TORCH}\n")
        (Path(tmp) / "constraints.txt").write_text(others + "\n")
        subprocess.run([uv, "pip", "compile", "in.txt", "-c", "constraints.txt", "--python-version", python,
                        "--python-platform", f"{machine}-manylinux_2_28", "--generate-hashes", "--no-header",
                        "--no-annotate", "--index-url", "https://pypi.org/simple", "-o", "out.txt", "-q"],
                       cwd=tmp, check=True)
        return (Path(tmp) / "out.txt").read_text()


def main(argv: list[str]) -> int:
    path, python = Path(argv[0]), argv[1]
    machine = argv[2] if len(argv) > 2 else "x86_64"
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    lock = path.read_text()
    pins = entries(pypi_torch_pins(lock, python, machine, uv))
    have = entries(lock)
    torch_cpu = re.compile(r"^torch==\S+\+cpu ; sys_platform == 'linux'.*?(?=\n\S|\Z)", re.S | re.M)
    if not torch_cpu.search(lock):
        raise SystemExit(f"{path}: no torch +cpu entry for Linux to replace")
    text = torch_cpu.sub(lambda _: pins["torch"].replace(f"torch=={TORCH}", f"torch=={TORCH} ; sys_platform == 'linux'", 1),
                         lock)
    text = text.replace("--find-links torch-cpu-wheels.html\n", "")
    added = sorted(name for name in pins if name not in have)
    text = text.rstrip("\n") + "\n" + "".join(pins[name] + "\n" for name in added)
    path.write_text(text)
    print(" ".join(f"{name}=={pins[name].split('==')[1].split()[0]}" for name in added))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
