"""Makes the model parity fixtures under tests/fixtures/model/ with Hugging Face transformers:
tiny random-init decoders (LLaMA with grouped-query attention, LLaMA with llama3 rope scaling,
Qwen2 with q/k/v bias and tied embeddings), saved with save_pretrained (safetensors), plus input ids
and the reference per-token log-probabilities (float32, CPU) and greedy continuations.

    ~/.cache/mathrl/venv/bin/python scripts/gen_model_fixtures.py            # regenerate
    ~/.cache/mathrl/venv/bin/python scripts/gen_model_fixtures.py --check-load DIR   # DIR (ours) loads in
        transformers and gives the logits stored beside it (DIR/expected_logits.json from our test)
"""
import argparse, json, os, sys
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "model")

def configs():
    from transformers import LlamaConfig, Qwen2Config
    common = dict(vocab_size=300, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                  num_attention_heads=4, max_position_embeddings=128, rms_norm_eps=1e-6,
                  bos_token_id=1, eos_token_id=2, pad_token_id=0)
    yield "llama_gqa", LlamaConfig(num_key_value_heads=2, rope_theta=10000.0, tie_word_embeddings=False, **common)
    yield "llama3_rope", LlamaConfig(num_key_value_heads=1, rope_theta=500000.0, tie_word_embeddings=False,
                                     rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                   "high_freq_factor": 4.0, "original_max_position_embeddings": 32},
                                     **common)
    yield "qwen2_bias_tied", Qwen2Config(num_key_value_heads=2, rope_theta=1000000.0, tie_word_embeddings=True,
                                         use_sliding_window=False, **common)

def build(name, cfg):
    from transformers import AutoModelForCausalLM
    torch.manual_seed(abs(hash(name)) % 1000 + 7)
    model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.float32).eval()
    # Random-init norms are all ones and biases zero: perturb them so parity tests see them.
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "norm" in n or n.endswith(".bias"):
                p.add_(torch.randn_like(p) * 0.1)
    return model

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check-load")
    args = ap.parse_args()
    if args.check_load:
        from transformers import AutoModelForCausalLM
        m = AutoModelForCausalLM.from_pretrained(args.check_load, torch_dtype=torch.float32).eval()
        exp = json.load(open(os.path.join(args.check_load, "expected_logits.json")))
        ids = torch.tensor([exp["ids"]])
        with torch.no_grad():
            logits = m(ids).logits[0]
        err = (logits - torch.tensor(exp["logits"])).abs().max().item()
        print(json.dumps({"dir": args.check_load, "max_abs_diff": err}))
        sys.exit(0 if err < 1e-4 else 1)
    g = torch.Generator().manual_seed(11)
    for name, cfg in configs():
        out = os.path.join(ROOT, name)
        os.makedirs(out, exist_ok=True)
        model = build(name, cfg)
        model.save_pretrained(out, safe_serialization=True)
        for extra in ("generation_config.json",):
            p = os.path.join(out, extra)
            if os.path.exists(p):
                os.remove(p)
        lines, greedy = [], []
        for length in (1, 2, 7, 33, 100):
            ids = torch.randint(3, cfg.vocab_size, (length,), generator=g)
            with torch.no_grad():
                logits = model(ids[None]).logits[0].float()
            lp = torch.log_softmax(logits, -1)
            per_token = lp[:-1].gather(1, ids[1:, None])[:, 0].tolist()
            lines.append({"ids": ids.tolist(), "logprobs": per_token,
                          "last_logits": logits[-1].tolist()})
        for length in (1, 5, 12):
            ids = torch.randint(3, cfg.vocab_size, (length,), generator=g)
            with torch.no_grad():
                gen = model.generate(ids[None], max_new_tokens=20, do_sample=False, eos_token_id=None,
                                     pad_token_id=0, attention_mask=torch.ones(1, length, dtype=torch.long))
            greedy.append({"ids": ids.tolist(), "continuation": gen[0, length:].tolist()})
        with open(os.path.join(out, "reference.jsonl"), "w") as f:
            for l in lines:
                f.write(json.dumps(l) + "\n")
        with open(os.path.join(out, "greedy.jsonl"), "w") as f:
            for l in greedy:
                f.write(json.dumps(l) + "\n")
        print(name, sum(p.numel() for p in model.parameters()), "parameters")

if __name__ == "__main__":
    main()
