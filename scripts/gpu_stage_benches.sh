#!/usr/bin/env bash
# The stage benchmarks in one GPU-machine call: evaluation (scripts/bench_eval.sh), SFT throughput
# and MFU (scripts/bench_sft.sh), GRPO vs PPO memory and step time (scripts/bench_rl.sh), each under
# its own time limit, then their tables gathered into $OUT (a few files, as the device tool returns).
#   bash scripts/gpu_stage_benches.sh           (needs .debs/ and SHARED=<folder with data/, tokenizers/>)
# ../shared does not travel to the GPU machine: copy what the benches read into the git-ignored
# .gpu-shared/ and carry it with .debs/:
#   mkdir -p .gpu-shared/data .gpu-shared/tokenizers && cp -r ../shared/data/{gsm8k,math,math500} .gpu-shared/data/ \
#     && cp -r ../shared/tokenizers/llama2 .gpu-shared/tokenizers/       then there: SHARED=$PWD/.gpu-shared
# Env: SHARED, EVAL_S / SFT_S / RL_S (seconds each), plus each script's own variables.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-out}"
work=/tmp/mathrl-stage-benches
mkdir -p "$OUT" "$work"
export MATHRL="${MATHRL:-$PWD/build-gpu/mathrl}" PYTHON="${PYTHON:-python3}" PYTHONUNBUFFERED=1
export SHARED="${SHARED:-../shared}" MATHRL_SHARED_DIR="${SHARED}"
MATHRL_GPU_TARGETS="mathrl" bash scripts/gpu_build.sh build-gpu > "$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
source /tmp/mathrl-deps/env.sh
run() {  # name seconds command...
  local name=$1 limit=$2; shift 2
  echo "== $name (limit ${limit}s)"
  OUT="$work/$name" timeout "$limit" "$@" > "$work/$name.log" 2>&1
  echo "$name exit $?" | tee -a "$OUT/summary.txt"
  tail -25 "$work/$name.log"
}
run eval "${EVAL_S:-240}" bash scripts/bench_eval.sh
run sft "${SFT_S:-150}" bash scripts/bench_sft.sh
run rl "${RL_S:-150}" bash scripts/bench_rl.sh
for f in eval/results.md sft/sft/results.md rl/rl_bench.md; do
  [ -f "$work/$f" ] && { echo "### $f"; cat "$work/$f"; } >> "$OUT/summary.txt"
done
tail -c 200000 "$work/eval.log" > "$OUT/eval.log"; tail -c 200000 "$work/sft.log" > "$OUT/sft.log"; tail -c 200000 "$work/rl.log" > "$OUT/rl.log"
cat "$OUT/summary.txt"
