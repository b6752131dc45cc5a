-- Stage tables of the packaged pipeline (recipes/pipeline.lua), built from a plain configuration
-- of paths and sizes. The pipeline writes a one-line recipe per stage,
--   return require("pipeline_stages").base { ...config... }
-- and runs it with mathrl.run_recipe, so each stage loads in its own Lua state with its schema
-- checked, its own run directory, log and metrics.
local M = {}

-- The one prompt format of SFT, RL and evaluation.
function M.prompt(question) return "Question: " .. question .. "\nAnswer:" end
M.stop = { "\nQuestion:" }

-- `c.sources`: { {name =, path =, weight =, kind = "problems" | "gsm8k" | "math"}, ... }; `c.epochs`
-- (nil: one pass) bounds each source's passes
local text_of = {
  problems = function(r) return r.question .. "\n" .. r.solution end,
  gsm8k = function(r) return r.question .. "\n" .. r.answer end,
  math = function(r) return r.problem .. "\n" .. r.solution end,
}

function M.base(c)
  local sources = {}
  for _, s in ipairs(c.sources) do
    if s.weight > 0 then
      sources[#sources + 1] = { name = s.name, path = s.path, weight = s.weight, epochs = c.epochs, text = text_of[s.kind] }
    end
  end
  return mathrl.base {
    name = "base",
    seed = c.seed,
    device = c.device,
    tokenizer = c.tokenizer,
    model = c.model,
    data = { sources = sources },
    seq_len = c.seq_len,
    micro_batch = c.micro_batch,
    grad_accum = c.grad_accum,
    steps = c.steps,
    lr = c.lr,
    schedule = "cosine",
    warmup = c.warmup,
    min_lr_ratio = c.min_lr_ratio or 0.1,
    weight_decay = 0.1,
    log_every = c.log_every,
  }
end

function M.instruct(c)
  return mathrl.instruct {
    name = "instruct",
    seed = c.seed,
    device = c.device,
    model = c.model,  -- the base stage's final model directory (its tokenizer is copied there)
    data = { sources = { {
      name = "sft", path = c.path, epochs = c.epochs,  -- nil: one pass
      template = function(r) return { prompt = M.prompt(r.question), response = " " .. r.solution } end,
    } } },
    seq_len = c.seq_len,
    micro_batch = c.micro_batch,
    grad_accum = c.grad_accum,
    steps = c.steps,
    lr = c.lr,
    schedule = "cosine",
    warmup = c.warmup,
    min_lr_ratio = c.min_lr_ratio,  -- nil: the stage's default (0.1)
    log_every = c.log_every,
  }
end

function M.rl(c)
  return mathrl.rl {
    name = "rl",
    seed = c.seed,
    device = c.device,
    model = c.model,
    tokenizer = c.model,
    data = c.path,
    prompt = function(r) return { prompt = M.prompt(r.question), answer = r.answer } end,
    rewards = { { name = "correct", builtin = "correct", weight = 1.0 } },
    steps = c.steps,
    prompts_per_step = c.prompts_per_step,
    num_generations = c.num_generations,
    max_completion_length = c.max_completion_length,
    max_batch = c.max_batch,  -- nil: the stage's default (64 decode slots)
    temperature = c.temperature,
    stop = M.stop,
    beta = c.beta,
    learning_rate = c.learning_rate,
    checkpoint_every = 0,
  }
end

-- Lua source for a plain value (strings, numbers, booleans, tables of them), keys sorted.
function M.serialize(v, indent)
  indent = indent or ""
  local t = type(v)
  if t == "string" then return string.format("%q", v) end
  if t == "number" then return math.type(v) == "integer" and string.format("%d", v) or string.format("%.17g", v) end
  if t == "boolean" then return tostring(v) end
  if t ~= "table" then error("pipeline_stages.serialize: cannot write a " .. t) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    if type(a) == type(b) then return a < b end
    return type(a) == "number"
  end)
  local inner, parts = indent .. "  ", {}
  for _, k in ipairs(keys) do
    local key = type(k) == "number" and "[" .. k .. "]" or (k:match("^[%a_][%w_]*$") and k or "[" .. string.format("%q", k) .. "]")
    parts[#parts + 1] = inner .. key .. " = " .. M.serialize(v[k], inner)
  end
  if #parts == 0 then return "{}" end
  return "{\n" .. table.concat(parts, ",\n") .. ",\n" .. indent .. "}"
end

return M
