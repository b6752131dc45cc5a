#!/usr/bin/env bash
# One GPU-machine call for the rollout engine and evaluation: build, the GPU tests of the kernels,
# model and engine, `mathrl bench generate` with FlashAttention over the cache and without it
# (MATHRL_FLASH_DECODE=0: the decode kernel), then scripts/bench_eval.sh (GSM8K greedy, MATH500
# maj@64) in the time left before DEADLINE_S seconds from the start.
#   bash scripts/gpu_engine_eval.sh      (needs .debs/ and .gpu-shared/ carried; see gpu_stage_benches.sh)
# Env: OUT (gpu-out), DEADLINE_S (560), BENCH (before the eval; "0.5b:8 0.5b:8:noflash"), BENCH_AFTER
#      (after it), SPLIT=1 (benches with --split-timing), SKIP_EVAL=1. Eval summaries carry the engine's split (MATHRL_SPLIT_TIMING=1).
set -uo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
OUT="${OUT:-gpu-out}"
mkdir -p "$OUT"
DEADLINE_S="${DEADLINE_S:-560}"
left() { echo $((DEADLINE_S - ($(date +%s) - start))); }
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0
MATHRL_GPU_TARGETS="mathrl kernels_gpu_tests model_gpu_tests sampler_gpu_tests" bash scripts/gpu_build.sh build-gpu \
  > "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
source /tmp/mathrl-deps/env.sh
echo "== built at $(( $(date +%s) - start )) s" | tee "$OUT/summary.txt"
for t in kernels model sampler; do
  timeout 120 "build-gpu/tests/$t/${t}_gpu_tests" > "$OUT/test_$t.log" 2>&1
  echo "$t gpu tests exit $? ($(grep -c '^\[       OK' "$OUT/test_$t.log") ok, $(grep -c '^\[  FAILED' "$OUT/test_$t.log") failed lines)" | tee -a "$OUT/summary.txt"
  grep -B5 "^\[  FAILED" "$OUT/test_$t.log" | head -40 >> "$OUT/summary.txt"
done
bench() {  # preset:G[:noflash] ...
  for spec in "$@"; do
    IFS=: read -r preset g mode <<< "$spec"
    flash=1; [ "$mode" = noflash ] && flash=0
    echo "== bench generate $preset G=$g flash=$flash" | tee -a "$OUT/summary.txt"
    MATHRL_FLASH_DECODE=$flash timeout 150 build-gpu/mathrl bench generate --preset "$preset" --device cuda --prompts 64 \
      --n "$g" --prompt-len 256 --max-new-tokens 512 ${SPLIT:+--split-timing} 2>&1 | tail -4 | tee -a "$OUT/summary.txt"
  done
}
bench ${BENCH-0.5b:8 0.5b:8:noflash}
if [ "${SKIP_EVAL:-0}" != 1 ]; then
  t=$(left)
  echo "== bench_eval with ${t}s left" | tee -a "$OUT/summary.txt"
  MATHRL_SPLIT_TIMING=1 OUT=/tmp/bench-eval MATHRL=build-gpu/mathrl SHARED="$PWD/.gpu-shared" timeout "$t" bash scripts/bench_eval.sh \
    > "$OUT/eval.log" 2>&1
  echo "bench_eval exit $?" | tee -a "$OUT/summary.txt"
  cat /tmp/bench-eval/results.md >> "$OUT/summary.txt" 2>/dev/null
  for n in gsm8k_greedy math500_maj64; do
    tail -c 3000 "/tmp/bench-eval/$n.log" > "$OUT/$n.log" 2>/dev/null
    cp "/tmp/bench-eval/$n/summary.json" "$OUT/$n.summary.json" 2>/dev/null
  done
fi
bench ${BENCH_AFTER:-}
cat "$OUT/summary.txt"
