#!/usr/bin/env bash
# Rollout-engine benchmark: `mathrl bench generate` against transformers' generate on the same
# workload (random-init LLaMA-style 0.5B and 1.5B, bf16, 64 prompts x G=8 and G=64, 256-token
# prompts, 512 new tokens). Writes results.jsonl and results.md to $OUT (default: bench-out/).
#
#   scripts/bench_generate.sh                      # full matrix (GPU machine)
#   PRESETS=tiny GROUPS_="2" PROMPTS=4 PROMPT_LEN=16 NEW=16 DEVICE=cpu scripts/bench_generate.sh   # smoke test
# Env: MATHRL (binary, default build/mathrl), PYTHON (default ~/.cache/mathrl/venv/bin/python),
#      PRESETS, GROUPS_, PROMPTS, PROMPT_LEN, NEW, DEVICE, HF_BATCH (sequences per HF generate call;
#      0 = all; set lower if HF runs out of memory), SKIP_HF=1.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
MATHRL="${MATHRL:-$here/build/mathrl}"
PYTHON="${PYTHON:-$HOME/.cache/mathrl/venv/bin/python}"
PRESETS="${PRESETS:-0.5b 1.5b}"
GROUPS_="${GROUPS_:-8 64}"
PROMPTS="${PROMPTS:-64}"
PROMPT_LEN="${PROMPT_LEN:-256}"
NEW="${NEW:-512}"
DEVICE="${DEVICE:-cuda}"
HF_BATCH="${HF_BATCH:-0}"
out="${OUT:-bench-out}"
mkdir -p "$out"
results="$out/results.jsonl"
: > "$results"

for preset in $PRESETS; do
  for g in $GROUPS_; do
    echo "== $preset G=$g: mathrl" >&2
    "$MATHRL" bench generate --preset "$preset" --device "$DEVICE" --prompts "$PROMPTS" --n "$g" \
      --prompt-len "$PROMPT_LEN" --max-new-tokens "$NEW" | tee -a "$results" || echo "{\"engine\":\"mathrl\",\"model\":\"random-$preset\",\"n\":$g,\"error\":true}" >> "$results"
    if [ "${SKIP_HF:-0}" != 1 ]; then
      echo "== $preset G=$g: transformers" >&2
      dtype=bfloat16; [ "$DEVICE" = cpu ] && dtype=float32
      "$PYTHON" "$here/scripts/hf_generate_bench.py" --preset "$preset" --device "$DEVICE" --dtype "$dtype" \
        --prompts "$PROMPTS" --n "$g" --prompt-len "$PROMPT_LEN" --max-new-tokens "$NEW" --batch "$HF_BATCH" \
        | tee -a "$results" || echo "{\"engine\":\"transformers\",\"model\":\"random-$preset\",\"n\":$g,\"error\":true}" >> "$results"
    fi
  done
done

"$PYTHON" - "$results" > "$out/results.md" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("| model | G | engine | tokens/s | seconds | roofline fraction | slots/batch | note |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    if r.get("error"):
        print(f"| {r['model']} | {r['n']} | {r['engine']} | - | - | - | - | failed |"); continue
    frac = f"{r['roofline_fraction']:.2f}" if "roofline_fraction" in r else "-"
    print(f"| {r['model']} | {r['n']} | {r['engine']} | {r['tokens_per_s']:.0f} | {r['seconds']:.1f} | {frac} | "
          f"{r.get('slots', r.get('batch'))} | {r['device']} {r['dtype']} |")
PY
cat "$out/results.md"
