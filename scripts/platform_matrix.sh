#!/usr/bin/env bash
# Platform matrix: both README commands in Debian userlands from old to new, as root and as a
# normal user, and the PDF's text compared with the one built on this machine.
#
# Not run by CI (it takes tens of minutes and needs root and debootstrap). Run it on a Debian
# or Ubuntu machine as root, from the repository:
#
#   sudo scripts/platform_matrix.sh                    # every userland below
#   sudo scripts/platform_matrix.sh bullseye testing   # some of them
#
# Userlands (each a chroot made with debootstrap under $MATRIX_DIR, default /var/tmp/sheet05-matrix):
#   bullseye  Debian 11: TeX Live 2020, pandoc 2.9 (as on Ubuntu 22.04); its Python is 3.9, so
#             CPython 3.11 is built from Debian's source into /opt/python3.11 (as pyenv would)
#   bookworm  Debian 12: TeX Live 2022, pandoc 2.17, Python 3.11
#   trixie    Debian 13: TeX Live 2024, pandoc 3.1, Python 3.13
#   testing   Debian testing: TeX Live 2026, pandoc 3.x, Python 3.14
#
# Environment:
#   MATRIX_DIR            where the chroots, logs and results go
#   MATRIX_MIRROR         Debian mirror (default: the first deb.debian.org-style URI in this
#                         machine's apt sources, else http://deb.debian.org/debian)
#   MATRIX_USERS          "root student" (default) or one of them
#   MATRIX_TORCH_WHEELS   a folder with torch-2.13.0+cpu wheels (TORCH_WHEELS in the chroot; default:
#                         the folder of this machine's pip find-links that holds its own)
#   LIE_DETECTION_MIRROR  the course data (bind-mounted read-only into each chroot)
#
# For each userland and user it writes $MATRIX_DIR/logs/<userland>-<user>-{export,tests}.log,
# compares the PDF with the one built here (scripts/matrix_report.py: the text line by line,
# and every page break that moved), and writes a row of docs/tested-on.md: userland, user,
# Python, pandoc, TeX Live, torch (as torch.__version__ reports it), PDF, test counts, the
# commit tested (HEAD when the run began, as `git archive` gives it) and the date. Rows of
# userlands not tested in this run stay as they were. This machine's .venv (./export.sh --setup-only) is needed:
# its Python runs the report and its uv pins PyPI's torch where that is needed (see below).
set -uo pipefail

REPO=${MATRIX_REPO:-$(cd "$(dirname "$0")/.." && pwd)}
MATRIX_DIR=${MATRIX_DIR:-/var/tmp/sheet05-matrix}
MATRIX_USERS=${MATRIX_USERS:-root student}
LOGS=$MATRIX_DIR/logs
COMMIT=$(git -C "$REPO" rev-parse HEAD)  # taken once: commits made while the matrix runs do not mix in
ALL_SUITES="bullseye bookworm trixie testing"
# Debian's python3.11 source (bookworm), for userlands whose own Python is too old. The
# SHA-256 is the one in bookworm's signed Sources index.
PY311_ORIG=pool/main/p/python3.11/python3.11_3.11.2.orig.tar.gz
PY311_SHA256=2411c74bda5bbcfcddaf4531f66d1adc73f247f529aee981b029513aefdbf849

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

default_mirror() {
  local uri
  uri=$(grep -rhoE '(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
        | grep -v -- '-security' | head -1 | awk '{print $2}')
  echo "${uri:-http://deb.debian.org/debian}"
}
MATRIX_MIRROR=${MATRIX_MIRROR:-$(default_mirror)}

# The TeX packages that export.sh installs (one list, in sheet05/setup.py), plus what the
# tests need (poppler-utils, shellcheck, git), Python's venv, and sudo to run as a normal user.
apt_packages() {
  local suite=$1 tex
  tex=$(sed -n 's/^APT_PACKAGES = "\(.*\)"$/\1/p' "$REPO/sheet05/setup.py")
  echo "$tex poppler-utils shellcheck git sudo ca-certificates xz-utils python3 python3-venv"
  if needs_built_python "$suite"; then
    # to build CPython 3.11
    echo "build-essential libssl-dev zlib1g-dev libffi-dev libbz2-dev liblzma-dev libsqlite3-dev libreadline-dev libncurses-dev uuid-dev"
  fi
}

needs_built_python() { [ "$1" = bullseye ]; }

chroot_dir() { echo "$MATRIX_DIR/$1"; }

in_chroot() {  # in_chroot SUITE COMMAND...: as root inside the chroot
  local dir
  dir=$(chroot_dir "$1"); shift
  chroot "$dir" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}

mount_chroot() {
  local dir
  dir=$(chroot_dir "$1")
  mountpoint -q "$dir/proc" || mount -t proc proc "$dir/proc"
  mountpoint -q "$dir/dev" || mount --bind /dev "$dir/dev"
  mountpoint -q "$dir/dev/pts" || mount -t devpts devpts "$dir/dev/pts" 2>/dev/null || true
  # a writable /dev/shm, as every system has (joblib's process pool needs it; without it the
  # notebook prints a warning a student would not see)
  mountpoint -q "$dir/dev/shm" || mount -t tmpfs -o mode=1777,nosuid,nodev shm "$dir/dev/shm"
  mountpoint -q "$dir/sys" || mount --bind /sys "$dir/sys"
  cp /etc/resolv.conf "$dir/etc/resolv.conf"
  trust_local_cas "$1"
  if [ -n "${LIE_DETECTION_MIRROR:-}" ]; then
    mkdir -p "$dir/mnt/lie_detection"
    mountpoint -q "$dir/mnt/lie_detection" || mount --bind -o ro "$LIE_DETECTION_MIRROR" "$dir/mnt/lie_detection"
  fi
  if [ -n "${MATRIX_TORCH_WHEELS:-}" ]; then
    mkdir -p "$dir/mnt/wheels"
    mountpoint -q "$dir/mnt/wheels" || mount --bind -o ro "$MATRIX_TORCH_WHEELS" "$dir/mnt/wheels"
  fi
  # one pip cache for all users and userlands (the wheels are the same), so that a run
  # downloads each wheel once
  mkdir -p "$MATRIX_DIR/pip-cache" "$dir/mnt/pip-cache"
  chmod 1777 "$MATRIX_DIR/pip-cache"
  mountpoint -q "$dir/mnt/pip-cache" || mount --bind "$MATRIX_DIR/pip-cache" "$dir/mnt/pip-cache"
}

# CA certificates added on this machine (a network that inspects TLS has its own): the chroot
# reaches PyPI through the same network, so it trusts them too (pip is told with PIP_CERT).
trust_local_cas() {
  local dir
  dir=$(chroot_dir "$1")
  ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1 || return 0
  [ -x "$dir/usr/sbin/update-ca-certificates" ] || return 0
  mkdir -p "$dir/usr/local/share/ca-certificates"
  if ! cmp -s <(cat /usr/local/share/ca-certificates/*.crt) <(cat "$dir"/usr/local/share/ca-certificates/*.crt 2>/dev/null); then
    cp /usr/local/share/ca-certificates/*.crt "$dir/usr/local/share/ca-certificates/"
    in_chroot "$1" update-ca-certificates >/dev/null 2>&1
  fi
}

umount_chroot() {
  local dir m
  dir=$(chroot_dir "$1")
  for m in mnt/pip-cache mnt/wheels mnt/lie_detection sys dev/shm dev/pts dev proc; do
    mountpoint -q "$dir/$m" && umount "$dir/$m"
  done
  return 0
}

debootstrap_suite() {  # the script debootstrap knows the suite by (testing: sid's)
  case $1 in
    testing) echo sid ;;
    *) echo "$1" ;;
  esac
}

build_chroot() {
  local suite=$1 dir
  dir=$(chroot_dir "$suite")
  if [ -e "$dir/.matrix-ready" ]; then
    log "$suite: chroot ready ($dir)"
    return 0
  fi
  command -v debootstrap >/dev/null || die "debootstrap not found: apt-get install debootstrap"
  if [ ! -x "$dir/usr/bin/apt-get" ]; then
    log "$suite: debootstrap from $MATRIX_MIRROR"
    local script_dir=${DEBOOTSTRAP_DIR:-/usr/share/debootstrap}
    debootstrap --variant=minbase "$suite" "$dir" "$MATRIX_MIRROR" \
      "$script_dir/scripts/$(debootstrap_suite "$suite")" >"$LOGS/$suite-debootstrap.log" 2>&1 \
      || die "$suite: debootstrap failed (log: $LOGS/$suite-debootstrap.log)"
  fi
  # A testing snapshot's Release file may have expired on a mirror that is not refreshed.
  echo 'Acquire::Check-Valid-Until "false";' >"$dir/etc/apt/apt.conf.d/99matrix-valid-until"
  echo "deb $MATRIX_MIRROR $suite main" >"$dir/etc/apt/sources.list"
  mount_chroot "$suite"
  log "$suite: apt-get install the toolchain"
  # shellcheck disable=SC2046  # one word per package
  { in_chroot "$suite" apt-get update -qq &&
    in_chroot "$suite" apt-get install -y -qq --no-install-recommends $(apt_packages "$suite"); } \
    >"$LOGS/$suite-apt.log" 2>&1 || die "$suite: apt-get failed (log: $LOGS/$suite-apt.log)"
  # No DejaVu from the system (fontconfig pulls it in): the build must take matplotlib's copy.
  local dejavu
  dejavu=$(in_chroot "$suite" dpkg-query -W -f='${Package} ${Status}\n' 'fonts-dejavu*' 2>/dev/null | awk '/ installed$/{print $1}')
  # shellcheck disable=SC2086  # one word per package
  [ -z "$dejavu" ] || in_chroot "$suite" apt-get remove -y -qq $dejavu >>"$LOGS/$suite-apt.log" 2>&1
  if needs_built_python "$suite"; then
    build_python311 "$suite"
  fi
  in_chroot "$suite" sh -c 'id student >/dev/null 2>&1 || useradd -m -s /bin/bash student'
  touch "$dir/.matrix-ready"
}

build_python311() {  # CPython 3.11 from Debian's source into /opt/python3.11 (as pyenv does)
  local suite=$1 dir tarball
  dir=$(chroot_dir "$suite")
  [ -x "$dir/opt/python3.11/bin/python3.11" ] && return 0
  tarball=$MATRIX_DIR/$(basename "$PY311_ORIG")
  if [ ! -s "$tarball" ]; then
    log "$suite: downloading CPython 3.11 source"
    curl -fsSL -o "$tarball.part" "$MATRIX_MIRROR/$PY311_ORIG" || die "download of $PY311_ORIG failed"
    mv "$tarball.part" "$tarball"
  fi
  echo "$PY311_SHA256  $tarball" | sha256sum -c --quiet - || die "$tarball: checksum mismatch"
  rm -rf "$dir/usr/src/python3.11" && mkdir -p "$dir/usr/src/python3.11"
  tar -xzf "$tarball" -C "$dir/usr/src/python3.11" --strip-components=1
  log "$suite: building CPython 3.11 (a few minutes)"
  in_chroot "$suite" sh -c 'cd /usr/src/python3.11 && ./configure --prefix=/opt/python3.11 --with-ensurepip=install && make -j"$(nproc)" && make altinstall' \
    >"$LOGS/$suite-python.log" 2>&1 || die "$suite: CPython build failed (log: $LOGS/$suite-python.log)"
  ln -sf /opt/python3.11/bin/python3.11 "$dir/usr/local/bin/python3.11"
}

# --------------------------------------------------------------------------- torch

# How a userland's .venv gets torch. The Linux pin is PyTorch's CPU build (torch==2.13.0+cpu),
# which is not on PyPI: a folder with its wheels (MATRIX_TORCH_WHEELS) becomes TORCH_WHEELS in
# the chroot. Where that folder has no wheel for the chroot's Python (and PyTorch's page is out
# of reach), the tested copy's lock pins PyPI's torch==2.13.0 instead, by hash, with the CUDA
# packages it needs on Linux (scripts/pin_pypi_torch.py; about 2.7 GB). SHEET05_TORCH_REPLACED
# then tells the tests that check the +cpu pin to skip, and why.
# Sets TORCH_ENV (extra environment for the README commands, one VAR=value per line).
provide_torch() {  # provide_torch REPO_COPY PYTHON_VERSION (e.g. 3.13)
  local copy=$1 version=$2 tag wheel added
  tag="cp${version/./}"
  wheel=$(ls "${MATRIX_TORCH_WHEELS:-/nonexistent}"/torch-2.13.0+cpu-"$tag"-"$tag"-*.whl 2>/dev/null | head -1)
  if [ -n "$wheel" ]; then
    TORCH_ENV="TORCH_WHEELS=/mnt/wheels"
    return 0
  fi
  added=$("$HOST_PYTHON" "$REPO/scripts/pin_pypi_torch.py" "$copy/requirements.txt" "$version" "$(uname -m)") \
    || die "could not pin PyPI's torch for Python $version"
  log "no torch +cpu wheel for $tag here: the copy pins PyPI's torch 2.13.0 and $(wc -w <<<"$added") CUDA packages"
  TORCH_ENV="SHEET05_TORCH_REPLACED=the lock of this copy pins PyPI's torch 2.13.0 (the CUDA build) in place of 2.13.0+cpu: PyTorch's CPU page was out of reach and no $tag CPU wheel was on disk"
}

# --------------------------------------------------------------------------- runs

HOST_PYTHON=$REPO/.venv/bin/python
REPORT=$REPO/scripts/matrix_report.py
TABLE=$REPO/docs/tested-on.md
ROWS=$MATRIX_DIR/rows.jsonl
AUTHORS=(--authors "Ada Lovelace" "Alan Turing")

python_for() {  # the version of the interpreter that export.sh will pick in the chroot
  local candidates
  candidates=$(sed -n 's/^  for c in \(python3\.[0-9]* .*python3\); do$/\1/p' "$REPO/export.sh")
  [ -n "$candidates" ] || die "export.sh: its list of interpreters was not found"
  # shellcheck disable=SC2016  # expanded in the chroot
  in_chroot "$1" sh -c 'for c in '"$candidates"'; do
      if command -v $c >/dev/null && v=$($c -c "import sys; print(\"%d.%d.%d\" % sys.version_info[:3]) if (3, 11) <= sys.version_info[:2] else sys.exit(1)" 2>/dev/null); then
        echo "$v"; exit 0; fi; done; exit 1'
}

versions_of() {  # "pandoc|TeX Live" in the chroot
  local pandoc tl
  pandoc=$(in_chroot "$1" pandoc --version | head -1 | awk '{print $2}')
  # TeX Live's release, from Debian's package version (2024.20250309-2: TeX Live 2024)
  tl=$(in_chroot "$1" dpkg-query -W -f='${Version}' texlive-base | cut -c1-4)
  echo "$pandoc|$tl"
}

copy_repo() {  # copy_repo DEST: the commit under test, as a student's clone would have it
  rm -rf "$1" && mkdir -p "$1"
  git -C "$REPO" archive --format=tar "$COMMIT" | tar -x -C "$1"
}

tests_line() {  # pytest's closing counts, e.g. "355 passed, 2 skipped"
  grep -E '^=+ .*(passed|failed|error).* in [0-9.]+s' "$1" | tail -1 | sed -E 's/^=+ //; s/ in [0-9.]+s.*$//'
}

pdf_verdict() {  # pdf_verdict PDF NAME: the comparison with the reference (diff in pdfs/NAME.diff)
  "$HOST_PYTHON" "$REPORT" compare "$MATRIX_DIR/pdfs/reference.pdf" "$1" "$MATRIX_DIR/pdfs/$2.diff"
}

add_row() {  # add_row USERLAND USER PYTHON PANDOC TEXLIVE TORCH PDF TESTS: one line of $ROWS
  "$HOST_PYTHON" -c 'import json, sys; print(json.dumps(dict(zip(
      ["userland", "user", "python", "pandoc", "texlive", "torch", "pdf", "tests", "commit", "date"], sys.argv[1:]))))' \
    "$@" "${COMMIT:0:7}" "$(date -u +%Y-%m-%d)" >>"$ROWS"
}

run_as() {  # run_as SUITE USER: both README commands in a fresh copy, then one row of the table
  local suite=$1 user=$2 dir home copy pyv log_e log_t rc_e rc_t verdict ids torch tests versions
  dir=$(chroot_dir "$suite")
  if [ "$user" = root ]; then home=/root; else home=/home/$user; fi
  copy=$dir$home/sheet05
  copy_repo "$copy"
  pyv=$(python_for "$suite") || die "$suite: no Python 3.11 or newer"
  provide_torch "$copy" "$(cut -d. -f1,2 <<<"$pyv")"
  [ "$user" = root ] || in_chroot "$suite" chown -R "$user:$user" "$home/sheet05"
  ids=$(in_chroot "$suite" sh -c "echo \$(id -u $user):\$(id -g $user)")  # the user exists in the chroot only
  log_e=$LOGS/$suite-$user-export.log
  log_t=$LOGS/$suite-$user-tests.log
  local env=(HOME="$home" USER="$user" LANG=C.UTF-8 PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin
             LIE_DETECTION_MIRROR=/mnt/lie_detection PIP_CACHE_DIR=/mnt/pip-cache
             PIP_CERT=/etc/ssl/certs/ca-certificates.crt)
  local line
  while IFS= read -r line; do [ -n "$line" ] && env+=("$line"); done <<<"$TORCH_ENV"
  as_user() { chroot --userspec="$ids" --groups="${ids#*:}" "$dir" /usr/bin/env -i "${env[@]}" "$@"; }
  log "$suite/$user: ./export.sh (Python $pyv)"
  as_user sh -c 'cd "$1" && shift && ./export.sh "$@"' sh "$home/sheet05" "${AUTHORS[@]}" >"$log_e" 2>&1
  rc_e=$?
  log "$suite/$user: ./export.sh --setup-only && .venv/bin/python -m pytest"
  as_user sh -c 'cd "$1" && ./export.sh --setup-only && .venv/bin/python -m pytest -rs' sh "$home/sheet05" >"$log_t" 2>&1
  rc_t=$?
  torch=$(as_user "$home/sheet05/.venv/bin/python" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo "?")
  mkdir -p "$MATRIX_DIR/pdfs"
  if [ "$rc_e" = 0 ] && [ -s "$copy/submission.pdf" ]; then
    cp "$copy/submission.pdf" "$MATRIX_DIR/pdfs/$suite-$user.pdf"
    verdict=$(pdf_verdict "$copy/submission.pdf" "$suite-$user")
  else
    verdict="**export failed** (exit $rc_e, $(basename "$log_e"))"
  fi
  tests="$(tests_line "$log_t")"
  [ "$rc_t" = 0 ] || tests="**${tests:-no result}** (exit $rc_t, $(basename "$log_t"))"
  versions=$(versions_of "$suite")
  add_row "$(describe_suite "$suite")" "$user" "$pyv" "${versions%%|*}" "${versions##*|}" "$torch" "$verdict" "$tests"
  log "$suite/$user: torch $torch; PDF: $verdict; tests: $tests"
}

forget_blas_settings() {  # in this (sub)shell: the chroots run with env -i, so OpenBLAS picks its
  # kernel from the CPU there; settings on this machine would pick another one and shift the
  # last digits of a few results, which the comparison would report as differences
  local v
  for v in $(compgen -e | grep -E '^(OPENBLAS|GOTO|OMP|MKL)_'); do unset "$v"; done
}

reference_pdf() {  # this machine's PDF of the same commit and its tests, as root
  local ref=$MATRIX_DIR/pdfs/reference.pdf copy=$MATRIX_DIR/host/sheet05 tests rc
  mkdir -p "$MATRIX_DIR/pdfs"
  rm -f "$ref"
  log "this machine: ./export.sh (the reference PDF) and the tests"
  copy_repo "$copy"
  ln -s "$REPO/.venv" "$copy/.venv"  # this machine's own .venv, which export.sh checks
  (forget_blas_settings && cd "$copy" && LIE_DETECTION_MIRROR=${LIE_DETECTION_MIRROR:-} TORCH_WHEELS=${MATRIX_TORCH_WHEELS:-} \
     ./export.sh "${AUTHORS[@]}") >"$LOGS/host-export.log" 2>&1 \
    || die "the reference export failed on this machine (log: $LOGS/host-export.log)"
  cp "$copy/submission.pdf" "$ref"
  (forget_blas_settings && cd "$copy" && LIE_DETECTION_MIRROR=${LIE_DETECTION_MIRROR:-} ./export.sh --setup-only &&
     .venv/bin/python -m pytest -rs) >"$LOGS/host-tests.log" 2>&1
  rc=$?
  tests="$(tests_line "$LOGS/host-tests.log")"
  [ "$rc" = 0 ] || tests="**${tests:-no result}** (exit $rc, host-tests.log)"
  . /etc/os-release
  add_row "this machine, $PRETTY_NAME (the reference)" "$(id -un)" \
    "$("$copy/.venv/bin/python" -c 'import platform; print(platform.python_version())')" \
    "$(pandoc --version | head -1 | awk '{print $2}')" "$(dpkg-query -W -f='${Version}' texlive-base | cut -c1-4)" \
    "$("$copy/.venv/bin/python" -c 'import torch; print(torch.__version__)')" "the reference" "$tests"
}

describe_suite() {
  case $1 in
    bullseye) echo "Debian 11 bullseye (as Ubuntu 22.04: TeX Live 2020, pandoc 2.9; CPython 3.11 built from source)" ;;
    bookworm) echo "Debian 12 bookworm (its own python3)" ;;
    trixie) echo "Debian 13 trixie" ;;
    testing) echo "Debian testing ($(in_chroot testing sh -c '. /etc/os-release; echo ${VERSION_CODENAME:-sid}'))" ;;
  esac
}

run_suite() {
  local suite=$1 user
  mount_chroot "$suite"
  for user in $MATRIX_USERS; do
    run_as "$suite" "$user"
  done
  umount_chroot "$suite"
}

main() {
  [ "$(id -u)" = 0 ] || die "run as root (debootstrap and chroot need it)"
  [ -x "$HOST_PYTHON" ] || die "$HOST_PYTHON is missing: run ./export.sh --setup-only in $REPO first"
  # by default, the folder of this machine's pip find-links that holds its torch +cpu wheel
  MATRIX_TORCH_WHEELS=${MATRIX_TORCH_WHEELS:-$(cd "$REPO" && "$HOST_PYTHON" -c \
    'from sheet05 import setup; print(setup.local_torch_folder(setup.pip_settings()) or "")')}
  mkdir -p "$LOGS"
  local suites=${*:-$ALL_SUITES} phase=${MATRIX_PHASE:-all}
  for suite in $suites; do
    case " $ALL_SUITES " in *" $suite "*) ;; *) die "unknown userland $suite (one of: $ALL_SUITES)" ;; esac
  done
  for suite in $suites; do
    build_chroot "$suite"
  done
  [ "$phase" = all ] || return 0
  : >"$ROWS"
  reference_pdf
  for suite in $suites; do
    run_suite "$suite"
  done
  "$HOST_PYTHON" "$REPORT" table "$ROWS" "$TABLE"
  log "table: $TABLE ($(wc -l <"$ROWS") rows from this run)"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
