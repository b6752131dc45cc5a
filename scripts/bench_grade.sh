#!/usr/bin/env bash
# Grading throughput (pairs/s on one core) over MATH500 and GSM8K pairs. Goal: >= 50k pairs/s/core.
#   scripts/bench_grade.sh [BUILD_DIR] [SECONDS]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build}"
seconds="${2:-3}"
cmake --build "$build" --target grade_bench -j2 >/dev/null
exec taskset -c 0 "$build/tests/reward/grade_bench" "$root/../shared" "$seconds"
