-- Built-in reward functions for RL recipes. They run inside the reward sandbox (no io/os), so
-- they use the native grader through the `mathrl_grader` table the runtime installs there:
--   mathrl_grader.extract(text) -> the last \boxed{...} answer or nil
--   mathrl_grader.equal(pred, gold) -> boolean (math-aware comparison)
--   mathrl_grader.grade(output, gold) -> boolean (extract + equal)
-- Each builtin is a factory: rewards.format{...options} returns function(sample) -> number.
-- In a recipe: rewards = { { name = "format", builtin = "format", weight = 0.1, options = {...} } }
local M = {}

local function count(text, plain)
  local n, at = 0, 1
  while true do
    local s, e = text:find(plain, at, true)
    if not s then return n end
    n, at = n + 1, e + 1
  end
end

local function check_options(name, opts, known)
  opts = opts or {}
  if type(opts) ~= "table" then error(("bad argument #1 to 'rewards.%s' (table expected, got %s)"):format(name, type(opts)), 3) end
  for k in pairs(opts) do
    if known[k] == nil then
      local names = {}
      for n in pairs(known) do names[#names + 1] = n end
      table.sort(names)
      error(("rewards.%s: unknown option '%s' (known: %s)"):format(name, tostring(k), table.concat(names, ", ")), 3)
    end
  end
  local out = {}
  for k, v in pairs(known) do
    if opts[k] == nil then out[k] = v else out[k] = opts[k] end
  end
  return out
end

-- 1 when the final answer equals the reference, else 0 (`missing` when there is no answer).
-- `fallback = false` accepts only explicit answers (\boxed{}, "The answer is", ####), not the last
-- number of the text.
function M.correct(opts)
  local o = check_options("correct", opts, { right = 1.0, wrong = 0.0, missing = 0.0, fallback = true })
  return function(sample)
    local pred = mathrl_grader.extract(sample.completion, o.fallback)
    if pred == nil then return o.missing end
    return mathrl_grader.equal(pred, sample.reference) and o.right or o.wrong
  end
end

-- 1 when the completion has exactly one \boxed{...}, with at least `min_reasoning` non-space
-- characters of reasoning before it; with `think = true`, the reasoning must also sit in one
-- <think>...</think> block that closes before the answer.
function M.format(opts)
  local o = check_options("format", opts, { min_reasoning = 1, think = false, good = 1.0, bad = 0.0 })
  return function(sample)
    local text = sample.completion
    if count(text, "\\boxed{") ~= 1 then return o.bad end
    local at = text:find("\\boxed{", 1, true)
    local before = text:sub(1, at - 1)
    if #before:gsub("%s", "") < o.min_reasoning then return o.bad end
    if o.think then
      if count(text, "<think>") ~= 1 or count(text, "</think>") ~= 1 then return o.bad end
      local open, close = text:find("<think>", 1, true), text:find("</think>", 1, true)
      if not (open < close and close < at) then return o.bad end
    end
    return o.good
  end
end

-- Overlong penalty (DAPO's soft punishment): 0 up to max_len - cache tokens, then falling
-- linearly to -1 at max_len, and -1 beyond. Length in completion tokens (completion_ids), or in
-- bytes of the completion when no ids are given.
function M.length(opts)
  local o = check_options("length", opts, { max_len = 4096, cache = 512, scale = 1.0 })
  assert(o.cache > 0 and o.cache <= o.max_len, "rewards.length: need 0 < cache <= max_len")
  local free = o.max_len - o.cache
  return function(sample)
    local n = #sample.completion_ids
    if n == 0 then n = #sample.completion end
    if n <= free then return 0.0 end
    if n > o.max_len then return -o.scale end
    return o.scale * (free - n) / o.cache
  end
end

-- builtin("format", {...}): used by the runtime for `builtin = "format"` entries.
function M.builtin(name, opts)
  local make = M[name]
  if type(make) ~= "function" or name == "builtin" then
    error(("unknown builtin reward '%s' (known: correct, format, length)"):format(tostring(name)), 2)
  end
  return make(opts)
end

return M
