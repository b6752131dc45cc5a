#!/usr/bin/env bash
# A CPU-size sweep of the pipeline (scripts/pipeline_seeds.sh) on the GPU machine's many cores,
# detached so that it outlives one device call: MODE=start builds (unless build-gpu/mathrl is
# there) and starts it; MODE=wait waits up to WAIT_S and copies the logs and the table so far
# into $OUT. The sweep lives in /tmp/mathrl-sweep while the machine stays warm.
# Env: MODE (start|wait), WAIT_S (480), VARIANTS, SEEDS, PARALLEL (8), THREADS (2).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-out}"
MODE="${MODE:-start}"
WAIT_S="${WAIT_S:-480}"
work=/tmp/mathrl-sweep
mkdir -p "$OUT" "$work"
start=$(date +%s)
if [ "$MODE" = start ]; then
  if [ ! -x build-gpu/mathrl ]; then
    MATHRL_GPU_TARGETS="mathrl" bash scripts/gpu_build.sh build-gpu > "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
  fi
  rm -rf "$work"/* 
  setsid nohup bash -c "source /tmp/mathrl-deps/env.sh; BIN=build-gpu/mathrl OUT=$work/runs SHARED=$PWD/.gpu-shared \
      PARALLEL=${PARALLEL:-8} THREADS=${THREADS:-2} SEEDS='${SEEDS:-1 2 3}' VARIANTS='${VARIANTS:-default=\{\}}' \
      bash scripts/pipeline_seeds.sh > $work/sweep.out 2>&1; echo \$? > $work/done" < /dev/null > /dev/null 2>&1 &
  echo "== sweep started $(date -u +%T): ${VARIANTS:-default}" | tee "$OUT/sweep.txt"
fi
while [ ! -f "$work/done" ] && [ $(( $(date +%s) - start )) -lt "$WAIT_S" ]; do sleep 10; done
{
  echo "== $(date -u +%T), done: $(cat "$work/done" 2>/dev/null || echo no)"
  cat "$work/sweep.out" 2>/dev/null
  for log in "$work"/runs/*/log.txt; do
    [ -f "$log" ] && { echo "-- $log"; grep -h "held-out\|sub-run\|problems:" "$log" | tail -8; }
  done
  python3 scripts/pipeline_table.py "$work"/runs/*/ 2>&1
} >> "$OUT/sweep.txt"
mkdir -p "$OUT/sweep"
for d in "$work"/runs/*/; do
  n=$(basename "$d")
  tar -C "$d" -czf "$OUT/sweep/$n.tgz" --exclude='*.safetensors' --exclude='*.bin' --exclude='*.pt' \
    --exclude='checkpoints' --exclude='model' --exclude='*.generations.jsonl' . 2>/dev/null
done
tail -60 "$OUT/sweep.txt"
