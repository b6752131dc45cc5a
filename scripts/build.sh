#!/usr/bin/env bash
# Configures and builds mathrl into build/ (build/mathrl, the tests). ccache keeps its cache outside
# the clone (~/.cache/ccache), so rebuilds and CI runs after the first are fast.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${MATHRL_BUILD_DIR:-build}"
JOBS="${MATHRL_JOBS:-$(nproc)}"
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
export CCACHE_SLOPPINESS="${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}"
export CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-5G}"
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="${MATHRL_BUILD_TYPE:-RelWithDebInfo}" "$@"
fi
cmake --build "$BUILD_DIR" -j "$JOBS"
