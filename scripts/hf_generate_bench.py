#!/usr/bin/env python3
"""Baseline for `mathrl bench generate`: the same workload through transformers' generate.

Random-init LLaMA-style model (presets match mathrl's: 0.5b, 1.5b, tiny), random prompt ids,
sampling at temperature 1 with EOS disabled, so every sequence generates max_new_tokens.
Prints one JSON line (and writes it to --out): tokens/s, seconds, peak memory.
All prompts x n sequences go in batches of --batch (default: all at once; lower it on OOM).
"""
import argparse
import json
import time

import torch
import transformers

PRESETS = {
    "0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2, vocab_size=151936),
    "1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                 num_key_value_heads=2, vocab_size=151936),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=512),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="0.5b", choices=sorted(PRESETS))
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--prompt-len", type=int, default=256)
    ap.add_argument("--max-new-tokens", type=int, default=512)
    ap.add_argument("--batch", type=int, default=0, help="sequences per generate call (0 = all)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--attn", default="sdpa")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="")
    a = ap.parse_args()

    torch.manual_seed(a.seed)
    cfg = transformers.LlamaConfig(max_position_embeddings=4096, rope_theta=1e6, tie_word_embeddings=True,
                                   bos_token_id=None, eos_token_id=None, pad_token_id=0, **PRESETS[a.preset])
    dtype = getattr(torch, a.dtype)
    with torch.device(a.device):
        model = transformers.LlamaForCausalLM._from_config(cfg, torch_dtype=dtype, attn_implementation=a.attn)
    model.eval()
    g = torch.Generator().manual_seed(a.seed)
    prompts = torch.randint(0, cfg.vocab_size, (a.prompts, a.prompt_len), generator=g)
    total = a.prompts * a.n
    batch = a.batch or total
    gen_kwargs = dict(do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=a.max_new_tokens,
                      min_new_tokens=a.max_new_tokens, pad_token_id=0)

    def run(ids):
        with torch.no_grad():
            return model.generate(ids.to(a.device), attention_mask=torch.ones_like(ids).to(a.device), **gen_kwargs)

    run(prompts[:2, :8])  # warm-up
    if a.device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    expanded = prompts.repeat_interleave(a.n, dim=0)
    t0 = time.perf_counter()
    generated = 0
    for s in range(0, total, batch):
        out = run(expanded[s:s + batch])
        generated += (out.shape[1] - a.prompt_len) * out.shape[0]
    if a.device.startswith("cuda"):
        torch.cuda.synchronize()
    secs = time.perf_counter() - t0
    res = {"benchmark": "generate", "engine": "transformers", "transformers": transformers.__version__,
           "model": "random-" + a.preset, "parameters": sum(p.numel() for p in model.parameters()),
           "device": a.device, "dtype": a.dtype, "prompts": a.prompts, "n": a.n, "prompt_len": a.prompt_len,
           "max_new_tokens": a.max_new_tokens, "batch": batch, "generated_tokens": generated, "seconds": secs,
           "tokens_per_s": generated / secs,
           "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if a.device.startswith("cuda") else None}
    line = json.dumps(res)
    print(line, flush=True)
    if a.out:
        with open(a.out, "w") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
