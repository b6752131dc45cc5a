#!/usr/bin/env python3
"""Greedy-decoding parity fixtures for the sampler (tests/fixtures/sampler/).

For each model directory (the model area's fixtures under tests/fixtures/model/* when they exist,
plus a tiny random LLaMA written here to tests/fixtures/sampler/tiny_llama/), runs transformers'
greedy `generate` in fp32 on CPU for a few id prompts and writes <model>/greedy.jsonl:
  {"ids": prompt ids, "max_new_tokens": N, "output": generated ids, "eos_token_id": id or null}
Run with ~/.cache/mathrl/venv/bin/python scripts/gen_sampler_fixtures.py
"""
import json
import os
import sys

import torch
import transformers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "sampler")


def make_tiny_llama(path):
    torch.manual_seed(1234)
    cfg = transformers.LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                                   rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                                   bos_token_id=1, eos_token_id=2)
    model = transformers.LlamaForCausalLM(cfg)
    with torch.no_grad():  # larger weights than the default init, so logits are far from uniform
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.15)
    model.save_pretrained(path, safe_serialization=True)


def greedy_cases(model_dir, out_path, vocab):
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
    model.eval()
    g = torch.Generator().manual_seed(7)
    eos = model.config.eos_token_id
    if isinstance(eos, list):
        eos = eos[0]
    rows = []
    for length, new in [(1, 12), (5, 20), (17, 24), (40, 16), (3, 30)]:
        ids = torch.randint(3, vocab, (length,), generator=g).tolist()
        for use_eos in (False, True):
            with torch.no_grad():
                kwargs = dict(max_new_tokens=new, do_sample=False, pad_token_id=0)
                kwargs["eos_token_id"] = eos if use_eos else None
                out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, length, dtype=torch.long), **kwargs)
            rows.append({"ids": ids, "max_new_tokens": new, "output": out[0, length:].tolist(),
                         "eos_token_id": eos if use_eos else None})
    with open(out_path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    print(f"wrote {out_path} ({len(rows)} cases)")


def main():
    os.makedirs(OUT, exist_ok=True)
    tiny = os.path.join(OUT, "tiny_llama")
    if not os.path.exists(os.path.join(tiny, "config.json")):
        make_tiny_llama(tiny)
    greedy_cases(tiny, os.path.join(OUT, "tiny_llama_greedy.jsonl"), 256)
    model_fixtures = os.path.join(ROOT, "tests", "fixtures", "model")
    if os.path.isdir(model_fixtures):
        for name in sorted(os.listdir(model_fixtures)):
            d = os.path.join(model_fixtures, name)
            if os.path.isfile(os.path.join(d, "config.json")):
                vocab = json.load(open(os.path.join(d, "config.json")))["vocab_size"]
                greedy_cases(d, os.path.join(OUT, f"{name}_greedy.jsonl"), vocab)
    return 0


if __name__ == "__main__":
    sys.exit(main())
