#!/usr/bin/env bash
# Data-parallel scaling and memory on the GPU machine: a ~1.1B random-init LLaMA-style model
# (TinyLlama shape: hidden 2048, 22 layers, 32 heads / 4 KV heads, vocab 32000) in bf16 with fp32
# masters, trained with NCCL on 1 and 2 GPUs in each mode (ddp, zero1, zero2). Prints tokens/s,
# the 1 -> 2 GPU scaling factor (2-GPU tokens/s / 1-GPU tokens/s; 2.0 is perfect) and every rank's
# peak allocated memory; compare the memory with `python3 scripts/zero_memory.py --preset 1b --world 2 --gpu-gb 141
# --no-reference` (written to $OUT/dp_memory_model.txt; the measured peak adds the activations of one
# micro-batch, which the calculator prints per token).
# Usage there (from the repo root, on an nvidia-h200-x2): bash scripts/bench_dp.sh
#   env: BENCH_MODES="ddp zero1 zero2"  BENCH_ARGS="--seq 2048 --micro-batch 4 --accum 2 --steps 8"
# Results go to $OUT (or ./gpu-out): dp_<mode>_<n>gpu.json/.log, dp_summary.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-out}"
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
BUILD=build-gpu
if [ ! -x "$BUILD/tests/dist/dist_bench" ]; then
  if ! bash scripts/gpu_build.sh "$BUILD" >"$OUT/build_dp.log" 2>&1; then
    source /tmp/mathrl-deps/env.sh
    cmake --build "$BUILD" -j "$(nproc)" --target dist_bench dist_worker >>"$OUT/build_dp.log" 2>&1 || { tail -30 "$OUT/build_dp.log"; exit 1; }
  fi
fi
source /tmp/mathrl-deps/env.sh
BIN="$BUILD/tests/dist/dist_bench"
MODES="${BENCH_MODES:-ddp zero1 zero2}"
ARGS="${BENCH_ARGS:---seq 2048 --micro-batch 4 --accum 2 --steps 8 --warmup 2}"
GPUS=$(nvidia-smi -L 2>/dev/null | wc -l)
[ "$GPUS" -ge 1 ] || { echo "no GPU"; exit 1; }

run_ranks() {  # run_ranks N MODE -> JSON line of rank 0 on stdout
  local n=$1 mode=$2 port=$((29600 + RANDOM % 2000)) pids=() r
  for ((r = 0; r < n; r++)); do
    RANK=$r LOCAL_RANK=$r WORLD_SIZE=$n MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
      "$BIN" --mode "$mode" $ARGS >"$OUT/dp_${mode}_${n}gpu.rank$r.log" 2>&1 &
    pids+=($!)
  done
  local rc=0
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  grep -h '^{' "$OUT/dp_${mode}_${n}gpu.rank0.log" | tail -1
  return $rc
}

summary=()
# Correctness over NCCL first: the CPU test scenarios (tests/dist/dist_worker.cpp) on 2 GPUs, each
# rank against the one-process reference (pass: grads < 1e-6, losses/params < 1e-5, divergence 0).
if [ "$GPUS" -ge 2 ] && [ -x "$BUILD/tests/dist/dist_worker" ]; then
  for sc in collectives sync overlap accum zero1 zero2 zero2sync nanguard; do
    port=$((29600 + RANDOM % 2000)) pids=()
    for r in 0 1; do
      DIST_DEVICE=cuda DIST_OUT_DIR=/tmp RANK=$r LOCAL_RANK=$r WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
        "$BUILD/tests/dist/dist_worker" "$sc" >"$OUT/dp_check_${sc}.rank$r.log" 2>&1 &
      pids+=($!)
    done
    rc=0
    for p in "${pids[@]}"; do wait "$p" || rc=1; done
    line=$(grep -hE '^(grad|loss|norm|param)_maxdiff|^replica_divergence|^skipped|_ok |^error' "$OUT/dp_check_${sc}.rank0.log" "$OUT/dp_check_${sc}.rank1.log" | tr '\n' ' ')
    summary+=("nccl check $sc (rc $rc): $line")
  done
fi
for mode in $MODES; do
  one=$(run_ranks 1 "$mode") || { summary+=("$mode 1 GPU: failed (see $OUT/dp_${mode}_1gpu.rank0.log)"); continue; }
  echo "$one" >"$OUT/dp_${mode}_1gpu.json"
  summary+=("$mode 1 GPU: $one")
  if [ "$GPUS" -ge 2 ]; then
    two=$(run_ranks 2 "$mode") || { summary+=("$mode 2 GPUs: failed (see $OUT/dp_${mode}_2gpu.rank*.log)"); continue; }
    echo "$two" >"$OUT/dp_${mode}_2gpu.json"
    summary+=("$mode 2 GPUs: $two")
    scale=$(python3 -c 'import json,sys; a=json.loads(sys.argv[1]); b=json.loads(sys.argv[2]); print("%.2fx" % (b["tokens_per_s"]/a["tokens_per_s"]))' "$one" "$two")
    summary+=("$mode scaling 1 -> 2 GPUs: $scale")
  fi
done
python3 scripts/zero_memory.py --preset 1b --world 2 --gpu-gb 141 --no-reference >"$OUT/dp_memory_model.txt" 2>&1 || true
printf '%s\n' "--- summary" "${summary[@]}" | tee "$OUT/dp_summary.txt"
