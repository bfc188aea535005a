#!/usr/bin/env bash
# Benchmark of the export once set up: runs ./export.sh N times (default 3) and prints the
# duration of every step and the total, per run. Not a test: timings depend on the machine.
#   benchmarks/export_time.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
./export.sh --setup-only > /dev/null
for i in $(seq 1 "$runs"); do
  echo "run $i:"
  ./export.sh 2>/dev/null | awk '/^\[[0-9]\/[0-9]\]/ {step=$0} /done in/ {printf "  %-75s %s s\n", step, $3} /^total/ {print "  " $0}'
done
