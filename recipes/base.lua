-- Continued pretraining in the style of DeepSeekMath-Base 7B (Shao et al., 2024, section 2.3):
-- start from a code model (DeepSeek-Coder-Base-v1.5 7B) and train on a math-heavy mix, by tokens:
--   56% math web (the DeepSeekMath Corpus), 4% AlgebraicStack, 10% arXiv, 20% GitHub code,
--   10% natural language (Common Crawl)
-- with AdamW (beta1 0.9, beta2 0.95, weight decay 0.1), a multi-step schedule (2,000 warmup steps
-- to a 4.2e-4 peak, 31.6% of it after 80% of training, 10% after 90%), 4K context and about 10M
-- tokens per step, for 500B tokens.
--
-- The corpora are not shipped: point the paths at your own token shards (`mathrl tokenize --shard`),
-- JSONL or text, e.g. MATHRL_BASE_DATA=/data/base with math_web/, algebraic_stack/, arxiv/, code/
-- and natural_language/ beneath it, and MATHRL_BASE_MODEL at the starting checkpoint (Hugging Face
-- layout). Steps here are sized for one 8-GPU node (micro_batch x grad_accum x 4096 x ranks tokens
-- per step); scale grad_accum to your ranks to keep ~10M tokens per step.
--   build/mathrl launch --nproc-per-node 8 -- run recipes/base.lua
local root = os.getenv("MATHRL_BASE_DATA") or "data/base"
local start = os.getenv("MATHRL_BASE_MODEL") or "models/deepseek-coder-7b-base-v1.5"

local function shard(name, weight)
  return { name = name, path = root .. "/" .. name .. ".bin", format = "shard", weight = weight, epochs = 100 }
end

return mathrl.base {
  name = "base",
  model = start,
  data = {
    sources = {
      shard("math_web", 0.56),
      shard("algebraic_stack", 0.04),
      shard("arxiv", 0.10),
      shard("code", 0.20),
      shard("natural_language", 0.10),
    },
  },
  seq_len = 4096,
  micro_batch = 4,
  grad_accum = 76,            -- 4 x 76 x 4096 x 8 ranks = 9.96M tokens per step
  tokens = 500e9,
  lr = 4.2e-4,
  schedule = "multistep",     -- 100% -> 31.6% at 80% of the steps -> 10% at 90%
  warmup = 2000,
  weight_decay = 0.1,
  betas = { 0.9, 0.95 },
  clip = 1.0,
  dtype = "bfloat16",
  activation_checkpointing = true,
  doc_masking = true,
  checkpoint_every = 1000,
  keep_last = 3,
  log_every = 10,
}
