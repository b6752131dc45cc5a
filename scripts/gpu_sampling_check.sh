#!/usr/bin/env bash
# The fused sampling kernel (kernels/sample_tokens.cu) on the GPU machine: its GPU tests, the
# engine's GPU tests with and without it, and an A/B of `mathrl bench generate` (0.5B, 64 prompts x
# G, 256-token prompts, 512 new tokens) with MATHRL_FUSED_SAMPLING=0/1 in the same call.
#   MATHRL_GPU_TARGETS="mathrl kernels_gpu_tests sampler_gpu_tests" bash scripts/gpu_build.sh build-gpu
#   bash scripts/gpu_sampling_check.sh          (Env: OUT (gpu-out), G_LIST ("8 64"), BUILD (build-gpu))
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-out}/sampling"
BUILD="${BUILD:-build-gpu}"
mkdir -p "$OUT"
# shellcheck disable=SC1091
source /tmp/mathrl-deps/env.sh
status=0
"$BUILD/tests/kernels/kernels_gpu_tests" > "$OUT/kernels_gpu_tests.txt" 2>&1 || status=1
for fused in 0 1; do
  MATHRL_FUSED_SAMPLING=$fused "$BUILD/tests/sampler/sampler_gpu_tests" > "$OUT/sampler_gpu_tests_fused$fused.txt" 2>&1 || status=1
done
grep -h "PASSED\|FAILED\|tests ran" "$OUT"/*_tests*.txt
for g in ${G_LIST:-8 64}; do
  for fused in 0 1; do
    MATHRL_FUSED_SAMPLING=$fused timeout 240 "$BUILD/mathrl" bench generate --preset 0.5b --device cuda --prompts 64 \
      --n "$g" --prompt-len 256 --max-new-tokens 512 --split-timing > "$OUT/bench_g${g}_fused$fused.txt" 2>&1 || status=1
    echo "-- G=$g fused=$fused"; tail -6 "$OUT/bench_g${g}_fused$fused.txt"
  done
done
exit $status
