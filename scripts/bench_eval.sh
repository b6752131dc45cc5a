#!/usr/bin/env bash
# `mathrl eval` speed on the GPU machine (H100/H200), issue 8's acceptance numbers:
#   1. GSM8K test, 1319 problems, 8-shot, greedy, 512 new tokens      (goal: under 2 minutes)
#   2. MATH500, 4-shot Minerva, 64 samples at T = 0.7, maj@64 / pass@64, 512 new tokens
# with a random-init ~1.1B LLaMA-style model (TinyLlama's shape: 22 layers, hidden 2048, FFN 5632,
# 32 heads, 4 KV heads, the LLaMA-2 tokenizer's 32000 tokens) in bf16. A random model almost never
# emits EOS or a stop string, so every completion runs to max-new-tokens: the timings are the
# worst case for this length, and the accuracies are ~0 by construction.
#
#   bash scripts/bench_eval.sh                 # from the repo root; builds build-gpu with scripts/gpu_build.sh
#   MATH500_LIMIT=100 bash scripts/bench_eval.sh   # MATH500 on the first 100 problems only (6400 sequences)
#   TINY=1 DEVICE=cpu GSM8K_LIMIT=4 MATH500_LIMIT=2 NEW=8 MATHRL=build/mathrl bash scripts/bench_eval.sh   # smoke test
# Env: OUT (default bench-eval-out), MATHRL (default build-gpu/mathrl, built when missing), SHARED (the
#      folder with data/ and tokenizers/; default shared/ or ../shared), NEW (max new tokens, 512),
#      BATCH (decode slots, 1024), GSM8K_LIMIT / MATH500_LIMIT (0 = all), SKIP_MATH=1, SKIP_GSM8K=1,
#      DEVICE (cuda), DTYPE (bfloat16), TINY=1 (a 2-layer model instead, for smoke tests), MODEL (its directory).
# Writes $OUT/results.json, $OUT/results.md, the eval directories (generations + summaries) and logs.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-bench-eval-out}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
NEW="${NEW:-512}"
BATCH="${BATCH:-1024}"
MATH500_LIMIT="${MATH500_LIMIT:-0}"
GSM8K_LIMIT="${GSM8K_LIMIT:-0}"
DEVICE="${DEVICE:-cuda}"
DTYPE="${DTYPE:-bfloat16}"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1

MATHRL="${MATHRL:-build-gpu/mathrl}"
if [ ! -x "$MATHRL" ]; then
  echo "== building (scripts/gpu_build.sh build-gpu; log in $OUT/build.log)" >&2
  bash scripts/gpu_build.sh build-gpu >"$OUT/build.log" 2>&1 || {
    tail -30 "$OUT/build.log"
    exit 1
  }
fi
# shellcheck disable=SC1091
[ -f /tmp/mathrl-deps/env.sh ] && source /tmp/mathrl-deps/env.sh

if [ -z "${SHARED:-}" ]; then
  if [ -d shared/data ]; then SHARED=shared; else SHARED=../shared; fi
fi
DATA="$SHARED/data"
TOKENIZER="$SHARED/tokenizers/llama2"
for need in "$DATA/gsm8k/test.jsonl" "$DATA/gsm8k/train.jsonl" "$DATA/math500/test.jsonl" "$DATA/math/train.jsonl" \
  "$TOKENIZER/tokenizer.model"; do
  [ -f "$need" ] || { echo "missing $need (set SHARED to the folder holding data/ and tokenizers/)" >&2; exit 1; }
done

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >"$OUT/gpu.txt" 2>/dev/null || echo "no nvidia-smi" >"$OUT/gpu.txt"

# The random model, written once by a recipe (mathrl.model.new + save in bf16).
if [ "${TINY:-0}" = 1 ]; then
  MODEL="${MODEL:-/tmp/mathrl-bench-eval-tiny}" SHAPE="hidden_size = 64, intermediate_size = 128, num_hidden_layers = 2, num_attention_heads = 4, num_key_value_heads = 2"
else
  MODEL="${MODEL:-/tmp/mathrl-bench-eval-model}" SHAPE="hidden_size = 2048, intermediate_size = 5632, num_hidden_layers = 22, num_attention_heads = 32, num_key_value_heads = 4"
fi
if [ ! -f "$MODEL/config.json" ]; then
  echo "== writing the random-init model to $MODEL" >&2
  cat >"$OUT/make_model.lua" <<LUA
return mathrl.script { name = "bench-eval-model", main = function(run)
  local m = mathrl.model.new({model_type = "llama", vocab_size = 32000, $SHAPE, max_position_embeddings = 4096,
    rms_norm_eps = 1e-5, rope_theta = 10000, bos_token_id = 1, eos_token_id = 2, tie_word_embeddings = false}, 0)
  run.log(string.format("parameters: %d", m:parameter_count()))
  m:save("$MODEL", "bfloat16")
end }
LUA
  "$MATHRL" run "$OUT/make_model.lua" --out "$OUT/make_model" >"$OUT/make_model.log" 2>&1 || { cat "$OUT/make_model.log"; exit 1; }
fi

common=(--model "$MODEL" --tokenizer "$TOKENIZER" --data-dir "$DATA" --device "$DEVICE" --dtype "$DTYPE"
  --max-new-tokens "$NEW" --batch "$BATCH" --style fewshot)

run_eval() {  # name, then eval options; the wall time (model load included) goes to $OUT/<name>.wall
  local name="$1"
  shift
  rm -rf "${OUT:?}/$name"
  echo "== $name: mathrl eval $*" >&2
  local t0 t1
  t0=$(date +%s.%N)
  "$MATHRL" eval "${common[@]}" "$@" --out "$OUT/$name" >"$OUT/$name.log" 2>&1 || { tail -20 "$OUT/$name.log"; return 1; }
  t1=$(date +%s.%N)
  python3 -c "print(f'{$t1 - $t0:.2f}')" >"$OUT/$name.wall"
}

[ "${SKIP_GSM8K:-0}" = 1 ] || run_eval gsm8k_greedy --bench gsm8k --samples 1 --limit "$GSM8K_LIMIT"
[ "${SKIP_MATH:-0}" = 1 ] || run_eval math500_maj64 --bench math500 --samples 64 --k 1,4,16,64 --temperature 0.7 \
  --limit "$MATH500_LIMIT"

[ "${TINY:-0}" = 1 ] && export MODEL_NAME="random-init tiny LLaMA-style (smoke test), $DTYPE on $DEVICE"
python3 - "$OUT" "$NEW" "$BATCH" <<'PY'
import json, os, sys
out, new, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
gpu = open(os.path.join(out, "gpu.txt")).read().strip()
rows, results = [], {"gpu": gpu, "model": os.environ.get("MODEL_NAME", "random-init LLaMA-style 1.1B (TinyLlama shape), bf16"),
                     "max_new_tokens": new, "batch": batch, "runs": {}}
for name in ("gsm8k_greedy", "math500_maj64"):
    path = os.path.join(out, name, "summary.json")
    if not os.path.exists(path):
        continue
    s = json.load(open(path))
    g, r = s["generation"][0], s["results"][0]
    wall = float(open(os.path.join(out, name + ".wall")).read())
    problems = r["overall"]["problems"]
    entry = {"benchmark": g["benchmark"], "problems": problems, "samples": r["samples"], "wall_seconds": wall,
             "generation_seconds": g["seconds"], "prefill_seconds": g["prefill_seconds"],
             "decode_seconds": g["decode_seconds"], "completions": g["completions"],
             "prompt_tokens": g["prompt_tokens"], "generated_tokens": g["generated_tokens"],
             "tokens_per_s": g["tokens_per_s"],
             "mean_completion_tokens": g["generated_tokens"] / max(1, g["completions"]),
             "accuracy": r["overall"]["accuracy"]["mean"]}
    if name == "math500_maj64":
        entry["maj@64"] = r["overall"]["maj_at"].get("64", {}).get("mean")
        if problems < 500:  # a subset: the full-set time scales with the number of sequences
            entry["extrapolated_500_problem_seconds"] = g["seconds"] * 500 / problems
    results["runs"][name] = entry
    rows.append(entry)
json.dump(results, open(os.path.join(out, "results.json"), "w"), indent=1)
with open(os.path.join(out, "results.md"), "w") as f:
    f.write(f"`mathrl eval`, {results['model']}, {gpu}; max_new_tokens {new}, {batch} decode slots.\n")
    f.write("A random model does not stop early: every completion is max_new_tokens long.\n\n")
    f.write("| run | problems x samples | wall s (incl. load) | generation s | prefill s | decode s | "
            "generated tokens | tokens/s | mean completion tokens |\n|---|---|---|---|---|---|---|---|---|\n")
    for e in rows:
        f.write(f"| {e['benchmark']} | {e['problems']} x {e['samples']} | {e['wall_seconds']:.1f} | "
                f"{e['generation_seconds']:.1f} | {e['prefill_seconds']:.1f} | {e['decode_seconds']:.1f} | "
                f"{e['generated_tokens']} | {e['tokens_per_s']:.0f} | {e['mean_completion_tokens']:.0f} |\n")
        if "extrapolated_500_problem_seconds" in e:
            f.write(f"\n(MATH500 subset: the full 500 problems would take about "
                    f"{e['extrapolated_500_problem_seconds']:.0f} s of generation at this rate.)\n")
print(open(os.path.join(out, "results.md")).read())
PY
