#!/usr/bin/env bash
# The pipeline's CPU size for several seeds (and variants) side by side, each run capped at THREADS
# threads, then the table by stage and seed (scripts/pipeline_table.py). On a 2-core machine run
# one at a time (PARALLEL=1, THREADS=2: the main job's own setting); a many-core machine runs a
# whole sweep at once.
#   SEEDS="1 2 3" bash scripts/pipeline_seeds.sh
#   VARIANTS='default={} long_sft={instruct={steps=600},rl={steps=90}}' PARALLEL=8 bash scripts/pipeline_seeds.sh
#   VARIANTS='default@2={} sft_lr@2,3={instruct={lr=2e-3}}'    (NAME@SEEDS: those seeds only)
# Env: BIN (build/mathrl), SEEDS ("1 2 3"), THREADS (2), PARALLEL (1), OUT (runs/seeds),
#      SHARED (../shared), VARIANTS (NAME=LUA-TABLE words, merged into the size as params.tune),
#      SIZE (cpu).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${BIN:-build/mathrl}"
SEEDS="${SEEDS:-1 2 3}"
THREADS="${THREADS:-2}"
PARALLEL="${PARALLEL:-1}"
OUT="${OUT:-runs/seeds}"
SHARED="${SHARED:-../shared}"
SIZE="${SIZE:-cpu}"
VARIANTS="${VARIANTS:-default={\}}"
mkdir -p "$OUT"

runs=()
for variant in $VARIANTS; do
  name="${variant%%=*}" tune="${variant#*=}" seeds="$SEEDS"
  if [[ "$name" == *@* ]]; then seeds="${name#*@}" seeds="${seeds//,/ }" name="${name%%@*}"; fi
  for seed in $seeds; do
    dir="$OUT/$name-s$seed"
    runs+=("$dir")
    while [ "$(jobs -rp | wc -l)" -ge "$PARALLEL" ]; do sleep 2; done
    echo "== $(date -u +%T) start $name seed $seed: params.tune=$tune" >&2
    rm -rf "$dir"
    OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS" /usr/bin/time -f "%e s, %M KB" -o "$dir.time" \
      "$BIN" run recipes/main.lua --out "$dir" --seed "$seed" --set "params.size=\"$SIZE\"" \
      --set "params.shared=\"$SHARED\"" --set "params.tune=$tune" > "$dir.log" 2>&1 &
  done
done
status=0
for pid in $(jobs -rp); do wait "$pid" || status=1; done
for dir in "${runs[@]}"; do echo "$dir: $(cat "$dir.time" 2>/dev/null | tail -1)"; done
python3 scripts/pipeline_table.py "${runs[@]}"
exit $status
