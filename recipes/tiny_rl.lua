-- GRPO on CPU in seconds: a random 16-token model learns to emit token 7. The reward is the
-- fraction of completion tokens equal to 7 (an untrained model hits it 1 time in 16). No tokenizer:
-- prompts are token ids and the reward reads sample.completion_ids.
-- Run: build/mathrl run recipes/tiny_rl.lua   (tests/rl/tiny_rl_test.cpp asserts the rise)
local records = {}
for i = 1, 32 do records[i] = { ids = { 1 + i % 15, 1 + (7 * i) % 15, 1 + (3 * i) % 15 } } end

return mathrl.rl {
  name = "tiny_rl",
  seed = 3,
  device = "cpu",
  model = { vocab_size = 16, hidden_size = 32, intermediate_size = 64, num_hidden_layers = 2,
            num_attention_heads = 2, num_key_value_heads = 2, max_position_embeddings = 64 },
  data = records,
  prompt = function(ex) return { prompt_ids = ex.ids } end,
  rewards = {
    { name = "target", code = [[
      return function(s)
        local hits = 0
        for _, t in ipairs(s.completion_ids) do if t == 7 then hits = hits + 1 end end
        return hits / #s.completion_ids
      end]] },
  },
  reward_limits = { threads = 1 },
  steps = 30,
  prompts_per_step = 4,
  num_generations = 8,
  max_completion_length = 8,
  temperature = 1.0,
  beta = 0.04,
  learning_rate = 3e-3,
  max_grad_norm = 1.0,
  checkpoint_every = 5,
}
