-- Supervised fine-tuning in the style of DeepSeekMath-Instruct 7B (Shao et al., 2024, section 3):
-- chain-of-thought solutions in the paper's prompt format
--   {question}\nPlease reason step by step, and put your final answer within \boxed{}.
-- loss on the response tokens only, short examples packed into 4K-token rows (each attending only
-- to itself), constant learning rate 5e-5 for 500 steps. DeepSeekMath's 776K-example instruction set
-- is not public; this recipe uses the GSM8K and MATH training sets in ../shared/data, which a
-- larger mix can extend (add sources). Start from the base stage's output:
--   MATHRL_INSTRUCT_MODEL=runs/base-.../model build/mathrl run recipes/instruct.lua
local shared = os.getenv("MATHRL_SHARED_DIR") or "../shared"
local start = os.getenv("MATHRL_INSTRUCT_MODEL") or "runs/base/model"
local suffix = "\nPlease reason step by step, and put your final answer within \\boxed{}."

-- GSM8K: drop the <<calculator>> annotations and end with the boxed answer.
local function gsm8k(ex)
  local body, answer = ex.answer:match("^(.*)\n####%s*(.-)%s*$")
  if not body then return nil end
  body = body:gsub("<<.->>", "")
  return { prompt = ex.question .. suffix, response = body .. "\nThe final answer is $\\boxed{" .. answer .. "}$." }
end

local function math_train(ex)
  return { prompt = ex.problem .. suffix, response = ex.solution }
end

return mathrl.instruct {
  name = "instruct",
  model = start,
  data = {
    sources = {
      { name = "gsm8k", path = shared .. "/data/gsm8k/train.jsonl", template = gsm8k, weight = 0.5, epochs = 10 },
      { name = "math", path = shared .. "/data/math/train.jsonl", template = math_train, weight = 0.5, epochs = 10 },
    },
  },
  seq_len = 4096,
  micro_batch = 4,
  grad_accum = 16,
  steps = 500,
  lr = 5e-5,
  schedule = "constant",
  warmup = 0,
  weight_decay = 0.0,
  clip = 1.0,
  dtype = "bfloat16",
  activation_checkpointing = true,
  doc_masking = true,
  checkpoint_every = 100,
  keep_last = 2,
  log_every = 10,
}
