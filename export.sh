#!/usr/bin/env bash
# Build submission.pdf: the one command. See README.md.
#
#   ./export.sh                                   names from authors.txt
#   ./export.sh --authors "Ada Lovelace" "Alan Turing"
#   ./export.sh --setup-only                      steps 1-3 only (used before the tests)
#
# Steps: Python venv (.venv, from requirements.txt) -> TeX toolchain -> course data
# (fetched and checksum-verified) -> execute the notebook -> notebook PDF -> theory PDF ->
# title page + contents + merge. submission.pdf is replaced only if every step succeeds.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)

# Debian/Ubuntu packages of the TeX toolchain (XeLaTeX, latexmk, the LaTeX packages that
# nbconvert's template and pdfpages need, pandoc for nbconvert's markdown, DejaVu fonts,
# poppler-utils for pdftotext/pdftoppm used by the tests and for looking at pages).
TEX_PACKAGES="texlive-xetex texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended texlive-plain-generic lmodern latexmk pandoc fonts-dejavu poppler-utils"
TOTAL=7
PYTHON=${PYTHON:-python3}

AUTHORS=()
SETUP_ONLY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --authors)
      if [ $# -lt 3 ]; then echo "error: --authors needs two names, e.g. --authors \"Ada Lovelace\" \"Alan Turing\"" >&2; exit 2; fi
      AUTHORS=("$2" "$3"); shift 3 ;;
    --setup-only) SETUP_ONLY=1; shift ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "error: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done

ms() { echo $(( $(date +%s%N) / 1000000 )); }
seconds_since() { local d=$(( $(ms) - $1 )); printf '%d.%d' $((d / 1000)) $((d % 1000 / 100)); }
started=$(ms)
step_start=0
begin() { echo "[$1/$TOTAL] $2 ..."; step_start=$(ms); }
end() { echo "      done in $(seconds_since "$step_start") s"; }

# 1. Python environment. Reinstalled only when requirements.txt changed.
begin 1 "Python environment (.venv from requirements.txt)"
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$PYTHON" -m venv .venv || {
    echo "error: could not create .venv with $PYTHON (on Debian/Ubuntu: apt-get install python3-venv;" \
         "or choose another interpreter with PYTHON=python3.11 ./export.sh)" >&2; exit 1; }
  .venv/bin/python -m pip install --quiet --upgrade pip 2>&1 | grep -v "is ignored" || true
  # pip's output is filtered of this machine's harmless find-links warnings; its exit code is kept.
  if ! .venv/bin/python -m pip install --quiet -r requirements.txt > .venv/pip.log 2>&1; then
    grep -v "is ignored" .venv/pip.log >&2; echo "error: pip could not install requirements.txt (log: .venv/pip.log)" >&2; exit 1
  fi
  echo "$want" > "$stamp"
else
  echo "      .venv is up to date"
fi
end

# 2. TeX toolchain.
begin 2 "TeX toolchain (xelatex, latexmk, pandoc, DejaVu fonts, LaTeX packages)"
tex_ok() {
  command -v xelatex >/dev/null && command -v latexmk >/dev/null && command -v pandoc >/dev/null \
    && command -v pdftotext >/dev/null && [ -n "$(fc-list "DejaVu Sans Mono" 2>/dev/null)" ] \
    && for sty in tcolorbox adjustbox pdfpages fvextra titling enumitem soul ulem eurosym upquote mathrsfs unicode-math parskip; do
         kpsewhich "$sty.sty" >/dev/null || return 1; done
}
if ! tex_ok; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "      installing: $TEX_PACKAGES"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
             --no-install-recommends $TEX_PACKAGES; } > build-apt.log 2>&1; then
      tail -20 build-apt.log >&2; echo "error: apt-get install failed (full log: build-apt.log)" >&2; exit 1
    fi
    rm -f build-apt.log
    tex_ok || { echo "error: TeX toolchain still incomplete after apt-get install" >&2; exit 1; }
  else
    echo "error: the TeX toolchain is missing. Install it once with:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends $TEX_PACKAGES" >&2
    exit 1
  fi
else
  echo "      all present"
fi
end

# 3. Course data: fetched (local copy, LIE_DETECTION_MIRROR, or download) and verified.
begin 3 "Course data for exercise 2 (data/lie_detection, SHA-256 verified)"
.venv/bin/python -m sheet05.data fetch
end

if [ "$SETUP_ONLY" = 1 ]; then echo "set-up complete ($(seconds_since "$started") s)"; exit 0; fi

# 4-7. Notebook, theory, appendix, title page, merge (sheet05/export.py).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} PYDEVD_DISABLE_FILE_VALIDATION=1
args=()
[ ${#AUTHORS[@]} -eq 2 ] && args=(--authors "${AUTHORS[@]}")
.venv/bin/python -m sheet05.export --first-step 4 --total-steps "$TOTAL" ${args[@]+"${args[@]}"}
echo "total $(seconds_since "$started") s"
