#!/usr/bin/env bash
# SFT/pretraining throughput and MFU of the base/instruct trainer on the GPU machine: a random-init
# ~1.1B LLaMA-style model (TinyLlama's shape: hidden 2048, 22 layers, 32 heads / 4 KV heads,
# intermediate 5632, vocab 32000), 2K context, bf16 weights with fp32 master weights, fused AdamW,
# packed rows of GSM8K + MATH training text (pre-tokenized into a shard so data is not the limit).
#
#   bash scripts/gpu_build.sh && source /tmp/mathrl-deps/env.sh && bash scripts/bench_sft.sh
#
# MFU = 6 * N * tokens/s / peak, N = parameters doing matmuls (all but the input embedding);
# "MFU+attn" adds the attention matmuls (12 * layers * hidden * seq_len per token, no causal
# discount, as PaLM counts). Peak: PEAK_TFLOPS (default 989, H100/H200 SXM dense bf16); the measured
# matmul ceiling (scripts/gpu_ceilings.py) is reported beside it. Tokens/s is the median over the
# steps after WARMUP. Writes results.jsonl and results.md under $OUT/sft (default bench-out/sft).
# Env: MATHRL, PYTHON (default python3), SKIP_CEILING (1: no matmul probe), CONFIGS ("4:false 8:false 16:true": micro_batch:activation
# checkpointing pairs tried; one row per pair), STEPS (30), WARMUP (5), SEQ (2048), PEAK_TFLOPS, DEVICE
# (cuda), and the shape: HIDDEN, LAYERS, INTER, HEADS, KV_HEADS. CPU smoke test:
#   DEVICE=cpu HIDDEN=64 LAYERS=2 INTER=128 HEADS=4 KV_HEADS=2 SEQ=128 CONFIGS=2:false STEPS=4 WARMUP=1 bash scripts/bench_sft.sh
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
MATHRL="${MATHRL:-$here/build/mathrl}"
PYTHON="${PYTHON:-python3}"
CONFIGS="${CONFIGS:-4:false 8:false 16:true}"
STEPS="${STEPS:-30}"
WARMUP="${WARMUP:-5}"
SEQ="${SEQ:-2048}"
PEAK_TFLOPS="${PEAK_TFLOPS:-989}"
DEVICE="${DEVICE:-cuda}"
export HIDDEN="${HIDDEN:-2048}" LAYERS="${LAYERS:-22}" INTER="${INTER:-5632}" HEADS="${HEADS:-32}" KV_HEADS="${KV_HEADS:-4}"
dtype=bfloat16; [ "$DEVICE" = cpu ] && dtype=float32
shared="${MATHRL_SHARED_DIR:-}"
for d in "$shared" "$here/../shared" "$here/shared"; do
  if [ -n "$d" ] && [ -d "$d/data/gsm8k" ]; then shared="$(cd "$d" && pwd)"; break; fi
done
[ -d "$shared/data/gsm8k" ] || { echo "bench_sft: no shared data (set MATHRL_SHARED_DIR)" >&2; exit 1; }
out="$(mkdir -p "${OUT:-bench-out}/sft" && cd "${OUT:-bench-out}/sft" && pwd)"
tok="$shared/tokenizers/llama2/tokenizer.model"

# 1. A token shard of GSM8K + MATH training text (question + solution per document).
if [ ! -f "$out/train.bin" ]; then
  "$PYTHON" - "$shared" > "$out/train_text.jsonl" <<'PY'
import json, sys
root = sys.argv[1]
for line in open(f"{root}/data/gsm8k/train.jsonl"):
    ex = json.loads(line); print(json.dumps({"text": ex["question"] + "\n" + ex["answer"]}))
for line in open(f"{root}/data/math/train.jsonl"):
    ex = json.loads(line); print(json.dumps({"text": ex["problem"] + "\n" + ex["solution"]}))
PY
  "$MATHRL" tokenize --tokenizer "$tok" --shard "$out/train.bin" "$out/train_text.jsonl"
fi

# 2. The measured bf16 matmul ceiling, for reference.
ceiling=0
if [ "$DEVICE" != cpu ] && [ "${SKIP_CEILING:-0}" != 1 ] && "$PYTHON" "$here/scripts/gpu_ceilings.py" "$out/ceilings.json" > /dev/null 2>&1; then
  ceiling=$("$PYTHON" -c "import json; print(json.load(open('$out/ceilings.json'))['bf16_matmul_flops'] / 1e12)")
fi

results="$out/results.jsonl"
: > "$results"
for config in $CONFIGS; do
  micro="${config%%:*}" ckpt="${config##*:}"
  name="m${micro}_ckpt${ckpt}"
  cat > "$out/$name.lua" <<LUA
return mathrl.instruct {
  name = "bench_sft",
  device = "$DEVICE",
  tokenizer = "$tok",
  model = { hidden_size = $HIDDEN, intermediate_size = $INTER, num_hidden_layers = $LAYERS, num_attention_heads = $HEADS,
            num_key_value_heads = $KV_HEADS, vocab_size = 32000, max_position_embeddings = $SEQ },
  data = { sources = { { name = "gsm8k_math", path = "$out/train.bin", format = "shard", epochs = 1000 } } },
  seq_len = $SEQ, micro_batch = $micro, grad_accum = 1, steps = $STEPS,
  lr = 1e-4, schedule = "constant", warmup = 0, weight_decay = 0.1,
  dtype = "$dtype", save_dtype = "$dtype", activation_checkpointing = $ckpt,
  doc_masking = false,            -- one causal mask per row: flash attention
  checkpoint_every = 0, checkpoint_at_end = false, keep_last = 1, log_every = 5,
}
LUA
  rm -rf "$out/run_$name"
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 > "$out/mem_$name.txt" 2>/dev/null &
  smi=$!
  status=0
  "$MATHRL" run "$out/$name.lua" --out "$out/run_$name" > "$out/log_$name.txt" 2>&1 || status=$?
  kill "$smi" 2>/dev/null || true
  rm -rf "$out/run_$name/model" "$out/run_$name/checkpoints"  # 2 GB of weights per run; the disk is small
  "$PYTHON" - "$out" "$name" "$micro" "$ckpt" "$SEQ" "$WARMUP" "$PEAK_TFLOPS" "$ceiling" "$status" >> "$results" <<'PY'
import json, os, statistics, sys
out, name, micro, ckpt, seq, warmup, peak, ceiling, status = sys.argv[1:]
seq, warmup, peak, ceiling = int(seq), int(warmup), float(peak), float(ceiling)
H, L, I, V = int(os.environ["HIDDEN"]), int(os.environ["LAYERS"]), int(os.environ["INTER"]), 32000
KV, HEADS = int(os.environ["KV_HEADS"]), int(os.environ["HEADS"])
hd = H // HEADS
layer = H * H * 2 + H * (KV * hd) * 2 + 3 * H * I + 2 * H  # q,o + k,v + mlp + norms
N_total = L * layer + 2 * V * H + H
N_matmul = N_total - V * H                                 # the input embedding is a lookup
row = {"name": name, "micro_batch": int(micro), "activation_checkpointing": ckpt == "true", "seq_len": seq,
       "parameters": N_total, "status": int(status)}
try:
    steps = [json.loads(l) for l in open(f"{out}/run_{name}/metrics.jsonl") if '"loss"' in l]
    tps = statistics.median(s["tokens_per_s"] for s in steps if s["step"] > warmup)
    row.update(tokens_per_s=tps, steps=len(steps), last_loss=steps[-1]["loss"])
    row["mfu"] = 6 * N_matmul * tps / (peak * 1e12)
    row["mfu_attn"] = (6 * N_matmul + 12 * L * H * seq) * tps / (peak * 1e12)
    if ceiling > 0:
        row["fraction_of_measured_matmul"] = 6 * N_matmul * tps / (ceiling * 1e12)
except Exception as e:
    row["error"] = str(e)
try:
    mem = [int(x) for x in open(f"{out}/mem_{name}.txt").read().split() if x.strip().isdigit()]
    row["peak_mem_mib"] = max(mem) if mem else None
except Exception:
    pass
print(json.dumps(row))
PY
  tail -1 "$results" >&2
done

"$PYTHON" - "$results" "$PEAK_TFLOPS" "$ceiling" > "$out/results.md" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
peak, ceiling = float(sys.argv[2]), float(sys.argv[3])
print(f"SFT, random-init {rows[0]['parameters']/1e9:.2f}B LLaMA-style, bf16 + fp32 masters, fused AdamW, "
      f"seq {rows[0]['seq_len']}; peak {peak:.0f} TFLOP/s" + (f", measured matmul ceiling {ceiling:.0f} TFLOP/s" if ceiling else ""))
print()
print("| micro_batch | act. ckpt | tokens/s | MFU (6N) | MFU (6N+attn) | of measured matmul | peak mem (MiB) | note |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    if "tokens_per_s" not in r:
        print(f"| {r['micro_batch']} | {r['activation_checkpointing']} | - | - | - | - | {r.get('peak_mem_mib', '-')} | failed (status {r['status']}): {r.get('error', '')} |")
        continue
    frac = f"{r['fraction_of_measured_matmul']:.1%}" if "fraction_of_measured_matmul" in r else "-"
    print(f"| {r['micro_batch']} | {r['activation_checkpointing']} | {r['tokens_per_s']:.0f} | {r['mfu']:.1%} | "
          f"{r['mfu_attn']:.1%} | {frac} | {r.get('peak_mem_mib', '-')} | loss {r['last_loss']:.3f} |")
PY
cat "$out/results.md"
