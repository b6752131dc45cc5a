-- A tiny SFT run that finishes on CPU in well under a minute: GSM8K and MATH training problems in
-- DeepSeekMath's prompt format, loss on the solutions only, examples packed into 256-token rows with
-- per-document masking. The model is a random-initialized 2-layer decoder unless MATHRL_TINY_MODEL
-- names one (e.g. tiny_base's output: MATHRL_TINY_MODEL=runs/tiny_base-.../model).
--   build/mathrl run recipes/tiny_instruct.lua
local shared = os.getenv("MATHRL_SHARED_DIR") or "../shared"
local suffix = "\nPlease reason step by step, and put your final answer within \\boxed{}."

local function gsm8k(ex)
  local body, answer = ex.answer:match("^(.*)\n####%s*(.-)%s*$")
  if not body then return nil end
  return { prompt = ex.question .. suffix,
           response = body:gsub("<<.->>", "") .. "\nThe final answer is $\\boxed{" .. answer .. "}$." }
end

local model = os.getenv("MATHRL_TINY_MODEL") or
  { hidden_size = 64, intermediate_size = 172, num_hidden_layers = 2, num_attention_heads = 4,
    num_key_value_heads = 2, max_position_embeddings = 512 }

return mathrl.instruct {
  name = "tiny_instruct",
  device = "cpu",
  model = model,
  tokenizer = type(model) == "string" and model or "tests/fixtures/tokenizer/synth_bytelevel.json",
  data = {
    sources = {
      { name = "gsm8k", path = shared .. "/data/gsm8k/train.jsonl", template = gsm8k, weight = 0.6 },
      { name = "math", path = shared .. "/data/math/train.jsonl", weight = 0.4,
        template = function(ex) return { prompt = ex.problem .. suffix, response = ex.solution } end },
    },
  },
  eval_data = {
    sources = { { name = "gsm8k_test", path = shared .. "/data/gsm8k/test.jsonl", template = gsm8k, shuffle = false } },
  },
  seq_len = 256,
  micro_batch = 4,
  grad_accum = 1,
  steps = 30,
  lr = 3e-3,
  schedule = "constant",
  warmup = 3,
  weight_decay = 0.0,
  dtype = "float32",
  eval_every = 15,
  eval_rows = 8,
  checkpoint_every = 15,
  keep_last = 1,
  log_every = 5,
  on_eval = function(step, model_dir)
    -- Any Lua can run here (e.g. mathrl.eval on a few problems); this one reports the model size.
    local m = mathrl.model.load(model_dir)
    return { parameters = m:parameter_count() }
  end,
}
