#!/usr/bin/env bash
# The pipeline's GPU size (recipes/main.lua, params.size="gpu") on the GPU machine, across device
# calls: a call may last at most 10 minutes and the run takes longer, so the first call builds,
# runs the smoke size on CUDA (plumbing: every stage and eval on the GPU), starts the GPU size
# detached and waits; later calls (MODE=wait) wait for it and gather what it wrote.
#   MODE=start bash scripts/gpu_pipeline.sh    then, at once:   MODE=wait bash scripts/gpu_pipeline.sh
# Needs .debs/ and .gpu-shared/ (data/gsm8k, data/math) carried; see scripts/gpu_stage_benches.sh.
# Env: OUT (gpu-out), WAIT_S (seconds to wait in this call), SEED (1), SET (more --set options).
# The run lives in /tmp/mathrl-pipeline (it survives between calls only while the machine stays warm).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-out}"
MODE="${MODE:-start}"
WAIT_S="${WAIT_S:-480}"
work=/tmp/mathrl-pipeline
mkdir -p "$OUT" "$work"
start=$(date +%s)
export NCCL_NVLS_ENABLE=0

if [ "$MODE" = start ]; then
  MATHRL_GPU_TARGETS="mathrl" bash scripts/gpu_build.sh build-gpu > "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
  echo "== built in $(( $(date +%s) - start )) s" | tee "$OUT/summary.txt"
  source /tmp/mathrl-deps/env.sh
  s=$(date +%s)
  [ "${SKIP_SMOKE:-0}" = 1 ] || timeout 240 build-gpu/mathrl run recipes/main.lua --out "$work/smoke" --seed 1 \
    --set 'params.size="smoke"' --set 'params.device="cuda"' --set "params.shared=\"$PWD/.gpu-shared\"" \
    > "$OUT/smoke.log" 2>&1
  rc=$?
  echo "== smoke size on cuda: exit $rc in $(( $(date +%s) - s )) s" | tee -a "$OUT/summary.txt"
  if [ $rc -ne 0 ]; then tail -60 "$OUT/smoke.log"; find "$work/smoke" -name log.txt -exec tail -20 {} \; | tail -60; exit 1; fi
  rm -rf "$work/gpu" "$work/done"
  # shellcheck disable=SC2086
  setsid nohup bash -c "source /tmp/mathrl-deps/env.sh; /usr/bin/time -v build-gpu/mathrl run recipes/main.lua \
      --out $work/gpu --seed ${SEED:-1} --set 'params.size=\"gpu\"' --set 'params.shared=\"$PWD/.gpu-shared\"' ${SET:-} \
      > $work/gpu.log 2>&1; echo \$? > $work/done" < /dev/null > /dev/null 2>&1 &
  echo "== gpu size started (seed ${SEED:-1})" | tee -a "$OUT/summary.txt"
fi

# Wait for the run (a done-file, not pgrep: a pattern would match this very command line).
# The run's log is copied into $OUT as it goes, so a call cut off by its limit still returns it.
while [ ! -f "$work/done" ] && [ $(( $(date +%s) - start )) -lt "$WAIT_S" ]; do
  sleep 5
  grep -h "held-out\|sub-run\|step [0-9]*0/" "$work/gpu.log" "$work"/gpu/*/log.txt 2>/dev/null | tail -40 > "$OUT/progress.txt"
done
{
  echo "== $(date -u +%T) after $(( $(date +%s) - start )) s in this call; done: $(cat "$work/done" 2>/dev/null || echo no)"
  grep -h "pipeline\|held-out\|problems:\|tokenizer:\|report:\|stage\|Elapsed\|Maximum resident" "$work/gpu.log" | tail -30
  for s in base instruct rl; do
    [ -f "$work/gpu/$s/log.txt" ] && { echo "-- $s"; tail -3 "$work/gpu/$s/log.txt"; }
  done
} | tee -a "$OUT/summary.txt"
if [ -f "$work/done" ]; then
  cp "$work/gpu/report.md" "$OUT/report.md" 2>/dev/null
  tail -c 20000 "$work/gpu.log" > "$OUT/gpu.log"
  tar -C "$work/gpu" -czf "$OUT/run.tgz" --exclude='*.safetensors' --exclude='*.bin' --exclude='*.pt' \
    --exclude='checkpoints' --exclude='model' --exclude='*.generations.jsonl' --exclude='*.jsonl.tmp' . 2>/dev/null
fi
