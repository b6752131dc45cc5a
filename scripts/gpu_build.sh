#!/usr/bin/env bash
# Builds mathrl on a machine with no package registry (the lent GPU machine): the Debian packages
# are carried as .debs (scripts/fetch_debs.sh makes .debs/ on a machine with apt) and unpacked into
# a private prefix; LibTorch comes from the machine's own python3 (torch.utils.cmake_prefix_path).
# Usage: bash scripts/gpu_build.sh [BUILD_DIR]   (then source $PREFIX/env.sh before running binaries)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${1:-build}"
PREFIX="${MATHRL_DEPS_PREFIX:-/tmp/mathrl-deps}"
if [ ! -f "$PREFIX/.done" ]; then
  mkdir -p "$PREFIX"
  for f in .debs/*.deb; do dpkg -x "$f" "$PREFIX"; done
  # The .pc files name /usr; point them at the prefix.
  find "$PREFIX" -name '*.pc' -exec sed -i "s|^prefix=/usr|prefix=$PREFIX/usr|" {} +
  touch "$PREFIX/.done"
fi
LIBDIR="$PREFIX/usr/lib/x86_64-linux-gnu"
cat > "$PREFIX/env.sh" <<ENV
export PKG_CONFIG_PATH="$LIBDIR/pkgconfig:$PREFIX/usr/share/pkgconfig\${PKG_CONFIG_PATH:+:\$PKG_CONFIG_PATH}"
export CPATH="$PREFIX/usr/include:$PREFIX/usr/include/x86_64-linux-gnu\${CPATH:+:\$CPATH}"
export LIBRARY_PATH="$LIBDIR\${LIBRARY_PATH:+:\$LIBRARY_PATH}"
export LD_LIBRARY_PATH="$LIBDIR\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
ENV
# shellcheck disable=SC1091
source "$PREFIX/env.sh"
PYTHON="${MATHRL_PYTHON:-python3}"
TORCH_PREFIX=$("$PYTHON" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$TORCH_PREFIX;$PREFIX/usr" -DGTest_DIR="$LIBDIR/cmake/GTest" \
    -DTORCH_CUDA_ARCH_LIST=9.0
fi
# MATHRL_GPU_TARGETS="a b" builds only those targets (a call that needs a few binaries).
cmake --build "$BUILD_DIR" -j "$(nproc)" ${MATHRL_GPU_TARGETS:+--target $MATHRL_GPU_TARGETS}
