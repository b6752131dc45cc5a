#!/usr/bin/env bash
# Single-threaded tokenizer encode throughput (MB/s) on math text (GSM8K + MATH train, ~10 MB).
# usage: scripts/bench_tokenize.sh [TOKENIZER_PATH] [BUILD_DIR]
#   default tokenizer: ../shared/tokenizers/qwen3; default build dir: build (env BUILD_DIR overrides).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
shared="${MATHRL_SHARED_DIR:-$root/../shared}"
tok="${1:-$shared/tokenizers/qwen3}"
build="${2:-${BUILD_DIR:-$root/build}}"
cmake --build "$build" --target tokenizer_bench -j2 >/dev/null
corpus="$(mktemp -t mathrl-bench-XXXXXX.txt)"
trap 'rm -f "$corpus"' EXIT
# One document per line; newlines inside a record become spaces so each line stays one document.
python3 - "$shared" >"$corpus" <<'PY'
import json, sys
shared = sys.argv[1]
for rel, fields in [("gsm8k/train.jsonl", ("question", "answer")), ("math/train.jsonl", ("problem", "solution"))]:
    for line in open(f"{shared}/data/{rel}", encoding="utf-8"):
        if line.strip():
            rec = json.loads(line)
            print(" ".join(rec[f] for f in fields).replace("\n", " "))
PY
"$build/tests/tokenizer/tokenizer_bench" "$tok" "$corpus" 5
