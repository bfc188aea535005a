#!/bin/sh
# Build submission.pdf: the one command. See README.md and ./export.sh --help.
# POSIX sh (dash, bash 3.2 on macOS, ...): it only picks a Python interpreter and hands over to
# sheet05/setup.py, which needs nothing but the standard library.

usage() {
  cat <<'EOF'
Usage: ./export.sh [--authors "Your Name" "Partner's Name"] [--draft] [--rerun]
                   [--setup-only] [--dry-run]

Builds submission.pdf in seven steps: Python environment (.venv from
requirements.txt, with uv if it is on the PATH, else with pip) -> TeX toolchain
-> course data (fetched, checksum-verified) -> execute the notebook -> notebook
PDF -> theory PDF and appendix -> title page, contents and merge.
submission.pdf is replaced only if every step succeeds. Set your two names once
in authors.txt first: without them it stops at once.

  --authors A B  the two names for the title page (default: from authors.txt)
  --draft        build draft.pdf, marked DRAFT on its title page, even without
                 both names (submission.pdf is left as it is)
  --rerun        execute the notebook even if nothing it depends on has changed
                 (by default the last executed copy is reused while the
                 notebook's cells, the sheet05 modules it imports,
                 requirements.txt, the Python version and the data manifest are
                 unchanged)
  --setup-only   steps 1-3 only: .venv, TeX check, course data (what the
                 notebook in Jupyter and the tests need); no names needed
  --dry-run      change nothing: show what step 1 would download and install
                 (pip's plan, made in a throwaway environment; report in
                 build/setup-dry-run.json)
  -h, --help     this text

Environment:
  PYTHON=python3.12          the interpreter for .venv (default: the first of
                             python3.14, python3.13, python3.12, python3.11,
                             python3 that is 3.11-3.14)
  INSTALLER=uv|pip           which installs .venv (default: uv if it is on the
                             PATH, else pip)
  TORCH_WHEELS=DIR|FILE|URL  another place for the Linux CPU build of torch
                             (default: PyTorch's CPU page, as listed in
                             torch-cpu-wheels.html; the file must match its
                             SHA-256 in requirements.txt)
  LIE_DETECTION_MIRROR=DIR   a local copy of the course data (see README.md)
EOF
}

for arg in "$@"; do
  case $arg in
    -h|--help) usage; exit 0 ;;
  esac
done

cd "$(dirname "$0")" || exit 1

case $(uname -s 2>/dev/null) in
  MINGW*|MSYS*|CYGWIN*)
    echo "error: on Windows the PDF is built through WSL2: in PowerShell \`wsl --install\` (Ubuntu)," \
         "then clone the repository inside WSL (cd ~) and run ./export.sh there. The notebook alone" \
         "runs natively: py -m venv .venv, then .venv\\Scripts\\pip install -r requirements.txt." >&2
    exit 1 ;;
esac

# The interpreter: $PYTHON if set, else the first supported one of these (by its full path,
# which also spares pyenv's shims a second start).
supported='import sys; ok = (3, 11) <= sys.version_info[:2] <= (3, 14); ok and sys.stdout.write(sys.executable); sys.exit(0 if ok else 1)'
runnable='import sys; sys.exit(0 if sys.version_info[:2] >= (3, 6) else 1)'
py=
if [ -n "${PYTHON:-}" ]; then
  if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "error: PYTHON=$PYTHON: no such command" >&2
    exit 1
  fi
  candidate=$PYTHON
else
  for c in python3.14 python3.13 python3.12 python3.11 python3; do
    if command -v "$c" >/dev/null 2>&1 && exe=$("$c" -c "$supported" 2>/dev/null); then
      py=${exe:-$c}
      break
    fi
  done
  candidate=
  if [ -z "$py" ]; then
    # None is supported: the first one found explains why (sheet05/setup.py refuses it).
    for c in python3 python; do
      if command -v "$c" >/dev/null 2>&1; then candidate=$c; break; fi
    done
    if [ -z "$candidate" ]; then
      echo "error: no Python found. Install Python 3.11, 3.12, 3.13 or 3.14 (Debian/Ubuntu/WSL:" \
           "sudo apt-get install python3 python3-venv; macOS: brew install python@3.12)" >&2
      exit 1
    fi
  fi
fi

if [ -z "$py" ]; then
  # Pythons older than 3.6 cannot even read sheet05/setup.py: refuse them here.
  if ! "$candidate" -c "$runnable" >/dev/null 2>&1; then
    if ! version=$("$candidate" -c 'import sys; sys.stdout.write("%d.%d" % sys.version_info[:2])'); then
      echo "error: $candidate does not run (see above); name a working one: PYTHON=python3.11 ./export.sh" >&2
      exit 1
    fi
    echo "error: Python $version is not supported: numpy 2.4.6 and scipy 1.17.1, pinned in" \
         "requirements.txt, have no wheel for Python $version (they need 3.11 or newer)." \
         "Supported: Python 3.11, 3.12, 3.13 or 3.14. Install one, then run ./export.sh again," \
         "or name it: PYTHON=python3.11 ./export.sh" >&2
    exit 1
  fi
  py=$candidate
fi

exec "$py" -m sheet05.setup "$@"
