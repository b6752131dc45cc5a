#!/usr/bin/env bash
# Runs the CPU test suites (labels gpu and multi_gpu need the GPU machine: scripts/gpu_check.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${MATHRL_BUILD_DIR:-build}"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "${MATHRL_JOBS:-$(nproc)}" -LE 'gpu|multi_gpu' "$@"
