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
# Paths relative to the clone and no working directory in the hash: another clone of the same
# sources (CI's fresh clone) reuses this machine's cache.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}"
export CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-1}"
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="${MATHRL_BUILD_TYPE:-RelWithDebInfo}" "$@"
fi
cmake --build "$BUILD_DIR" -j "$JOBS"
