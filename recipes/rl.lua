-- GRPO as DeepSeekMath ran it (Shao et al. 2024, section 4.2): from the instruct model, on the
-- chain-of-thought prompts of GSM8K and MATH train, 64 completions per question, KL coefficient
-- 0.04 to the frozen instruct model, learning rate 1e-6, completions up to 1024 tokens, 1024
-- completions per rollout batch (16 questions x 64), one policy update per exploration stage.
-- Reward: correctness of the final \boxed{} answer by the native grader (the paper used a reward
-- model; recipes can add one as another reward entry).
--
--   build/mathrl run recipes/rl.lua --set model=DIR              (a Hugging Face checkpoint dir)
--   build/mathrl run recipes/rl.lua --set algorithm=ppo ...      (the PPO baseline with a critic)
--   build/mathrl run recipes/rl.lua --resume runs/grpo-math-...  (continue from the last checkpoint)
local shared = os.getenv("MATHRL_SHARED_DIR") or "../shared"
local model = os.getenv("MATHRL_RL_MODEL") or "runs/instruct/final"

-- The last \boxed{...} of a MATH solution (braces balanced).
local function boxed(text)
  local at, answer = 1, nil
  while true do
    local s, e = text:find("\\boxed{", at, true)
    if not s then return answer end
    local depth, i = 1, e + 1
    while i <= #text and depth > 0 do
      local c = text:sub(i, i)
      if c == "{" then depth = depth + 1 elseif c == "}" then depth = depth - 1 end
      i = i + 1
    end
    if depth == 0 then answer = text:sub(e + 1, i - 2) end
    at = i
  end
end

local instruction = "\nPlease reason step by step, and put your final answer within \\boxed{}."

return mathrl.rl {
  name = "grpo-math",
  seed = 1,
  model = model,
  tokenizer = model,            -- the checkpoint's tokenizer.json
  dtype = "bfloat16",
  gradient_checkpointing = true,
  data = { shared .. "/data/gsm8k/train.jsonl", shared .. "/data/math/train.jsonl" },
  prompt = function(ex)
    local question, answer
    if ex.question then                                  -- GSM8K: the number after ####
      question, answer = ex.question, ex.answer:match("####%s*(.-)%s*$")
    else                                                 -- MATH: the solution's boxed answer
      question, answer = ex.problem, boxed(ex.solution)
    end
    if not answer then return nil end
    return { prompt = "User: " .. question .. instruction .. "\n\nAssistant:", answer = answer }
  end,
  rewards = { { name = "correct", builtin = "correct", weight = 1.0 } },
  algorithm = "grpo",
  advantage = "grpo",
  scale_rewards = true,
  num_generations = 64,
  prompts_per_step = 16,       -- 16 x 64 = 1024 completions per rollout batch
  num_iterations = 1,          -- one update per exploration stage
  max_completion_length = 1024,
  temperature = 1.0,
  beta = 0.04,
  kl_estimator = "k3",
  epsilon = 0.2,
  loss_type = "grpo",
  learning_rate = 1e-6,
  weight_decay = 0.0,
  max_grad_norm = 1.0,
  steps = 500,
  token_budget = 32768,
  max_batch = 256,
  checkpoint_every = 50,
}
