#!/usr/bin/env python3
"""Per-GPU memory of GRPO training under data parallelism (DDP) and ZeRO stages 1-3.

The policy is trained in bf16 with fp32 master weights and AdamW (two fp32 moments); the frozen
reference model for the KL term is bf16. Psi = parameter count, W = world size (GPUs).

  bytes/param       DDP      ZeRO-1     ZeRO-2     ZeRO-3
  bf16 weights      2        2          2          2/W
  grads (bf16)      2        2          2/W        2/W
  fp32 masters      4        4/W        4/W        4/W
  Adam m + v        8        8/W        8/W        8/W
  reference (bf16)  2        2          2          2/W
  step transient    4        4/W        4/W        4/W   (fp32 copies of the stepped grads)

What is left after these (minus a reserve for the CUDA context, NCCL and fragmentation) holds the
rollout's KV cache (generation phase: no grads alive) and the training activations (update phase).

Usage: python3 scripts/zero_memory.py --preset deepseekmath-7b --world 8 [--mode all] [--gpu-gb 80]
       python3 scripts/zero_memory.py --params 6.9e9 --world 8 --mode zero2
No dependencies beyond python3.
"""
import argparse
import sys

GiB = 1024 ** 3

# LLaMA-style shapes: hidden, intermediate, layers, heads, kv_heads, vocab, tied embeddings.
PRESETS = {
    # deepseek-ai/deepseek-math-7b-base config.json
    "deepseekmath-7b": dict(hidden=4096, intermediate=11008, layers=30, heads=32, kv_heads=32, vocab=102400, tied=False),
    # the benchmark model of scripts/bench_dp.sh (TinyLlama-1.1B shape)
    "1b": dict(hidden=2048, intermediate=5632, layers=22, heads=32, kv_heads=4, vocab=32000, tied=False),
}

MODES = ["ddp", "zero1", "zero2", "zero3"]


def outer_params(s):
    """Parameters outside the decoder layers: embeddings (and LM head when untied), final norm."""
    return s["vocab"] * s["hidden"] * (1 if s["tied"] else 2) + s["hidden"]


def param_count(s):
    return s["layers"] * layer_params(s) + outer_params(s)


def layer_params(s):
    h, i, kvd = s["hidden"], s["intermediate"], s["hidden"] // s["heads"] * s["kv_heads"]
    return 2 * h * h + 2 * h * kvd + 3 * h * i + 2 * h


def static_bytes(mode, psi, world, grad_bytes, reference, layer_psi, shard_reference=False, outer_psi=0.0):
    """Persistent bytes per GPU by component, plus the transient of the optimizer step.
    shard_reference: the rl stage's shard_reference = true (the reference cut into W pieces in any mode)."""
    shard = {"ddp": (1, 1, 1, 1), "zero1": (1, 1, world, 1), "zero2": (1, world, world, 1),
             "zero3": (world, world, world, world)}[mode]
    w_div, g_div, o_div, r_div = shard
    if shard_reference:
        r_div = world
    rows = {
        "bf16 weights": 2 * psi / w_div,
        "gradients": grad_bytes * psi / g_div,
        "fp32 masters": 4 * psi / o_div,
        "Adam moments (2 x fp32)": 8 * psi / o_div,
        "reference model (bf16)": (2 * psi / r_div) if reference else 0.0,
    }
    if mode == "zero3":
        # Gathered full weights of the layer being computed and the one prefetched (policy; the
        # reference is gathered the same way during its forward, not at the same time).
        rows["ZeRO-3 gathered layers (2)"] = 2 * 2 * layer_psi
    elif shard_reference and reference:
        # While scoring, the sharded reference holds one layer in full (and its outer parameters:
        # embeddings and LM head, gathered for the pass), at a time when no policy gradients live.
        rows["reference: a layer + embeddings/head gathered while scoring"] = 2 * (layer_psi + outer_psi)
    transient = 4 * psi / (1 if mode == "ddp" else world)
    return rows, transient


def activation_bytes_per_token(s):
    """bf16 activations saved for backward per token per layer, flash attention, no dropout:
    14h (norm inputs/outputs, q, attention output, residuals, rope) + 6 kv_dim (k, v) + 8i (SwiGLU)."""
    h, i, kvd = s["hidden"], s["intermediate"], s["hidden"] // s["heads"] * s["kv_heads"]
    return 14 * h + 6 * kvd + 8 * i


def kv_bytes_per_token(s):
    kvd = s["hidden"] // s["heads"] * s["kv_heads"]
    return 2 * s["layers"] * kvd * 2  # k and v, bf16


def report(args, shape, psi, mode):
    rows, transient = static_bytes(mode, psi, args.world, args.grad_bytes, not args.no_reference,
                                   layer_params(shape) if shape else psi / 30, args.shard_reference,
                                   outer_params(shape) if shape else 0.0)
    gpu = args.gpu_gb * GiB
    reserve = args.reserve_gb * GiB
    static = sum(rows.values())
    grads = rows["gradients"]
    out = [f"### {mode.upper() if mode == 'ddp' else 'ZeRO-' + mode[-1]}: {psi / 1e9:.2f}B parameters, "
           f"{args.world} GPUs of {args.gpu_gb:g} GiB", "", "| component | GiB per GPU |", "|---|---:|"]
    for k, v in rows.items():
        out.append(f"| {k} | {v / GiB:.1f} |")
    out.append(f"| **persistent total** | **{static / GiB:.1f}** |")
    out.append(f"| optimizer-step transient (fp32 grad copies) | {transient / GiB:.1f} |")
    out.append(f"| reserve (CUDA context, NCCL, fragmentation) | {reserve / GiB:.1f} |")
    train_free = gpu - reserve - static
    step_peak = static + transient + reserve
    # Rollout phase: gradients are freed (zero_grad) before generation.
    rollout_free = gpu - reserve - (static - grads)
    if mode == "zero3":
        # The sampler needs the whole policy: gather it once for the rollout (not layer by layer).
        rollout_free -= 2 * psi * (1 - 1 / args.world)
    out.append(f"| **free in the update phase** | **{train_free / GiB:.1f}** |")
    out.append(f"| free in the rollout phase (no grads{'; policy gathered whole' if mode == 'zero3' else ''}) "
               f"| {rollout_free / GiB:.1f} |")
    fits = train_free > 0 and step_peak <= gpu
    out.append("")
    if shape:
        act = activation_bytes_per_token(shape) * shape["layers"]
        act_ckpt = 2 * shape["hidden"] * shape["layers"]  # each layer's input only
        one_layer = activation_bytes_per_token(shape)
        logits = 0.5 * GiB  # chunked token log-probs: ~256 MiB chunk + its backward recompute
        kv = kv_bytes_per_token(shape)
        if train_free > logits:
            no_ckpt = (train_free - logits) / act
            ckpt = (train_free - logits) / (act_ckpt + one_layer)
            out.append(f"- update phase: about **{no_ckpt:,.0f}** tokens per micro-batch without activation "
                       f"checkpointing ({act / 2**20:.2f} MiB/token), **{ckpt:,.0f}** with it "
                       f"({(act_ckpt + one_layer) / 2**10:.0f} KiB/token incl. the recomputed layer)")
        else:
            out.append("- update phase: **does not fit** (no room for activations)")
        if rollout_free > 0:
            out.append(f"- rollout phase: KV cache for about **{rollout_free / kv:,.0f}** tokens "
                       f"({kv / 2**10:.0f} KiB/token), e.g. {rollout_free / kv / 1024:,.0f} sequences of 1024 tokens")
    if not fits:
        out.append(f"- **does not fit** on {args.gpu_gb:g} GiB: the step needs {step_peak / GiB:.1f} GiB")
    elif step_peak > gpu * 0.95:
        out.append(f"- tight: the optimizer step peaks at {step_peak / GiB:.1f} GiB")
    out.append("")
    return "\n".join(out), fits


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), help="model shape (sets --params)")
    ap.add_argument("--params", type=float, help="parameter count (without a preset: no activation/KV estimate)")
    ap.add_argument("--world", type=int, default=8, help="GPUs (default 8)")
    ap.add_argument("--mode", choices=MODES + ["all"], default="all")
    ap.add_argument("--gpu-gb", type=float, default=80.0, help="memory per GPU in GiB (default 80; H200: 141)")
    ap.add_argument("--reserve-gb", type=float, default=4.0, help="GiB kept for context/NCCL/fragmentation")
    ap.add_argument("--grad-bytes", type=int, default=2, choices=[2, 4], help="bytes per gradient (bf16 2, fp32 4)")
    ap.add_argument("--no-reference", action="store_true", help="no frozen reference model (SFT)")
    ap.add_argument("--shard-reference", action="store_true",
                    help="the reference model sharded over the GPUs (the rl stage's shard_reference = true)")
    a = ap.parse_args()
    if a.world < 1:
        ap.error("--world must be >= 1")
    shape = PRESETS.get(a.preset) if a.preset else None
    if shape is None and a.params is None:
        shape = PRESETS["deepseekmath-7b"]
    psi = a.params if a.params else param_count(shape)
    modes = MODES if a.mode == "all" else [a.mode]
    fit = []
    for m in modes:
        text, ok = report(a, shape, psi, m)
        print(text)
        fit.append(f"{m}: {'fits' if ok else 'does not fit'}")
    print("summary: " + ", ".join(fit))
    return 0


if __name__ == "__main__":
    sys.exit(main())
