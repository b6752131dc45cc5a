-- A tiny continued-pretraining run that finishes on CPU in well under a minute: a 2-layer
-- LLaMA-style model (random init) on a 70/30 token mix of GSM8K and MATH training text, packed
-- into 128-token rows with per-document masking, warmup + cosine, eval on held-out GSM8K test text,
-- a checkpoint every 10 steps. Run: build/mathrl run recipes/tiny_base.lua
-- Resume an interrupted run: build/mathrl run recipes/tiny_base.lua --out RUN_DIR --resume RUN_DIR
local shared = os.getenv("MATHRL_SHARED_DIR") or "../shared"

return mathrl.base {
  name = "tiny_base",
  seed = 1,
  device = "cpu",
  tokenizer = "tests/fixtures/tokenizer/synth_bytelevel.json",  -- 600-token byte-level BPE
  model = { hidden_size = 64, intermediate_size = 172, num_hidden_layers = 2, num_attention_heads = 4,
            num_key_value_heads = 2, max_position_embeddings = 512 },
  data = {
    sources = {
      { name = "gsm8k", path = shared .. "/data/gsm8k/train.jsonl", weight = 0.7,
        text = function(ex) return ex.question .. "\n" .. ex.answer end },
      { name = "math", path = shared .. "/data/math/train.jsonl", weight = 0.3,
        text = function(ex) return ex.problem .. "\n" .. ex.solution end },
    },
  },
  eval_data = {
    sources = {
      { name = "gsm8k_test", path = shared .. "/data/gsm8k/test.jsonl", shuffle = false,
        text = function(ex) return ex.question .. "\n" .. ex.answer end },
    },
  },
  seq_len = 128,
  micro_batch = 4,
  grad_accum = 2,
  steps = 40,
  lr = 3e-3,
  schedule = "cosine",
  warmup = 4,
  min_lr_ratio = 0.1,
  weight_decay = 0.1,
  dtype = "float32",
  eval_every = 20,
  eval_rows = 16,
  checkpoint_every = 10,
  keep_last = 2,
  log_every = 5,
}
