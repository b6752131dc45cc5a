#!/usr/bin/env python3
"""Forward + backward time of causal attention by SDPA backend, at the SFT benchmark's shape
(scripts/bench_sft.sh: micro-batch 8, 2K context, 32 query heads over 4 KV heads of 64), in bf16.
Which backend the trainer's at::scaled_dot_product_attention should prefer, measured, not guessed.

  python3 scripts/gpu_attention_probe.py [OUT.json] [--batch 8 --seq 2048 --heads 32 --kv-heads 4 --dim 64]

For each backend: with enable_gqa (K/V stay at kv_heads) and with K/V expanded to every head
(what a backend without GQA support needs); a backend that refuses the inputs is reported as such.
TFLOP/s counts the causal half of 4*B*H*T*T*D forward, and 3.5x that for forward + backward (the
backward's five matmuls, QK^T recomputed, to the forward's two)."""
import argparse
import json
import sys

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
import torch.nn.functional as F


def timed(fn, iters=20, warmup=5):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--dim", type=int, default=64)
    a = ap.parse_args()
    B, T, H, KV, D = a.batch, a.seq, a.heads, a.kv_heads, a.dim
    dev = "cuda"
    # The trainer's layout: [B, T, heads, D] contiguous, transposed to [B, heads, T, D] views.
    q = torch.randn(B, T, H, D, device=dev, dtype=torch.bfloat16).transpose(1, 2).requires_grad_()
    k = torch.randn(B, T, KV, D, device=dev, dtype=torch.bfloat16).transpose(1, 2).requires_grad_()
    v = torch.randn(B, T, KV, D, device=dev, dtype=torch.bfloat16).transpose(1, 2).requires_grad_()
    grad = torch.randn(B, H, T, D, device=dev, dtype=torch.bfloat16)
    flops_fwd = 4 * B * H * T * T * D / 2
    rows = []
    for name, backend in [("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION),
                          ("efficient", SDPBackend.EFFICIENT_ATTENTION)]:
        for gqa in (True, False):
            def step():
                kk, vv = (k, v) if gqa else (k.repeat_interleave(H // KV, 1), v.repeat_interleave(H // KV, 1))
                out = F.scaled_dot_product_attention(q, kk, vv, is_causal=True, enable_gqa=gqa and KV != H)
                out.backward(grad)
            def fwd():
                with torch.no_grad():
                    kk, vv = (k, v) if gqa else (k.repeat_interleave(H // KV, 1), v.repeat_interleave(H // KV, 1))
                    F.scaled_dot_product_attention(q, kk, vv, is_causal=True, enable_gqa=gqa and KV != H)
            row = {"backend": name, "kv": "gqa" if gqa else "expanded"}
            try:
                with sdpa_kernel([backend]):
                    row["fwd_ms"] = timed(fwd)
                    row["fwd_bwd_ms"] = timed(step)
                row["fwd_tflops"] = flops_fwd / row["fwd_ms"] / 1e9
                row["fwd_bwd_tflops"] = 3.5 * flops_fwd / row["fwd_bwd_ms"] / 1e9
            except Exception as e:  # a backend that does not take these inputs
                row["error"] = str(e).splitlines()[0][:200]
            rows.append(row)
            print(json.dumps(row), flush=True)
    result = {"shape": {"batch": B, "seq": T, "heads": H, "kv_heads": KV, "dim": D}, "torch": torch.__version__,
              "cudnn": torch.backends.cudnn.version(), "device": torch.cuda.get_device_name(), "rows": rows}
    if a.out:
        json.dump(result, open(a.out, "w"), indent=1)


if __name__ == "__main__":
    sys.exit(main())
