#!/usr/bin/env bash
# Everything that needs the GPU machine, in one call: build (scripts/gpu_build.sh), measure the
# ceilings, run the gpu-labelled tests, and check that transformers loads what we save.
# Usage there: bash scripts/gpu_check.sh [SECTION...]   (sections: ceilings tests export; default all)
# Results go to $OUT (or ./gpu-out) as logs; the last lines printed are a summary.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-out}"
mkdir -p "$OUT"
SECTIONS="${*:-ceilings tests export}"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
summary=()

BUILD_TARGETS="${MATHRL_GPU_TARGETS:-kernels_gpu_tests model_gpu_tests}"
if ! bash scripts/gpu_build.sh build-gpu >"$OUT/build.log" 2>&1; then
  # gpu_build.sh builds everything; fall back to the targets this check needs.
  source /tmp/mathrl-deps/env.sh
  cmake --build build-gpu -j "$(nproc)" --target $BUILD_TARGETS >>"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
  summary+=("build: full build failed (see build.log); built $BUILD_TARGETS")
else
  summary+=("build: ok")
fi
source /tmp/mathrl-deps/env.sh

for section in $SECTIONS; do
  case "$section" in
    ceilings)
      python3 scripts/gpu_ceilings.py "$OUT/ceilings.json" | tee "$OUT/ceilings.log"
      summary+=("ceilings: $(cat "$OUT/ceilings.log")") ;;
    tests)
      for t in build-gpu/tests/kernels/kernels_gpu_tests build-gpu/tests/model/model_gpu_tests; do
        [ -x "$t" ] || continue
        "$t" 2>&1 | tee "$OUT/$(basename "$t").log" | grep -E '^\[(7B|  PASSED|  FAILED)|Failure' || true
        summary+=("$(basename "$t"): $(grep -E '^\[  (PASSED|FAILED)' "$OUT/$(basename "$t").log" | tr '\n' ' ')")
        summary+=("$(grep '^\[7B' "$OUT/$(basename "$t").log" || true)")
      done ;;
    export)
      rm -rf /tmp/mathrl-export && mkdir -p /tmp/mathrl-export
      MATHRL_EXPORT_DIR=/tmp/mathrl-export build-gpu/tests/model/model_gpu_tests --gtest_filter='*Export*' >"$OUT/export.log" 2>&1
      python3 scripts/gen_model_fixtures.py --check-load /tmp/mathrl-export 2>/dev/null | tee -a "$OUT/export.log"
      summary+=("export to transformers: $(tail -1 "$OUT/export.log")") ;;
  esac
done
printf '%s\n' "--- summary" "${summary[@]}"
