-- Multi-step arithmetic word problems with worked step-by-step solutions, for the packaged
-- pipeline's pretraining, SFT and RL data. Deterministic: problem i of seed s depends only on
-- (s, i), never on math.random. Every record is {question =, solution =, answer =}: the solution
-- shows one calculation per line ("12 * 4 = 48") and ends with \boxed{answer}; answer is the final
-- number as a string (integers only: divisions are exact by construction).
--
--   local problems = require "problems"
--   local train = problems.generate { seed = 1, n = 500, level = 2, split = "train" }
--   problems.write_jsonl(run.dir .. "/train.jsonl", train)
--
-- Held-out problems are disjoint from training ones by construction: a problem's split is a hash of
-- its question text (split_of), so the same text can never land in both.
local M = {}

-- SplitMix64 on Lua's wrapping 64-bit integers; `>>` is a logical shift in Lua 5.4.
local function splitmix(state)
  state = state + 0x9E3779B97F4A7C15
  local z = state
  z = (z ~ (z >> 30)) * 0xBF58476D1CE4E5B9
  z = (z ~ (z >> 27)) * 0x94D049BB133111EB
  return state, z ~ (z >> 31)
end

-- A generator of integers in [lo, hi] seeded by (seed, index).
local function rng(seed, index)
  local _, mixed = splitmix(seed)
  local state = mixed + index * 0x632BE59BD9B4E019
  local r = {}
  function r.int(lo, hi)
    local z
    state, z = splitmix(state)
    return lo + (z >> 1) % (hi - lo + 1)
  end
  function r.pick(list) return list[r.int(1, #list)] end
  return r
end

-- FNV-1a, 32-bit: the split of a question.
local function fnv1a(s)
  local h = 2166136261
  for i = 1, #s do h = ((h ~ s:byte(i)) * 16777619) & 0xFFFFFFFF end
  return h
end

function M.split_of(question, heldout_percent)
  return fnv1a(question) % 100 < (heldout_percent or 20) and "heldout" or "train"
end

local people = {
  { "Maya", "she", "her" }, { "Liam", "he", "his" }, { "Aisha", "she", "her" }, { "Noah", "he", "his" },
  { "Sofia", "she", "her" }, { "Kenji", "he", "his" }, { "Priya", "she", "her" }, { "Mateo", "he", "his" },
  { "Elena", "she", "her" }, { "Omar", "he", "his" }, { "Chloe", "she", "her" }, { "Tariq", "he", "his" },
  { "Hana", "she", "her" }, { "Lucas", "he", "his" }, { "Zara", "she", "her" }, { "Diego", "he", "his" },
}

local function cap(s) return (s:gsub("^%l", string.upper)) end

-- Replaces {key} with fields of `t`.
local function fill(pattern, t)
  return (pattern:gsub("{(%w+)}", function(k)
    local v = t[k]
    if v == nil then error("problems: no value for {" .. k .. "} in '" .. pattern .. "'") end
    return tostring(v)
  end))
end

-- A chain problem: a start value, then `steps` operations on the running value. Each template
-- gives the start sentence, the phrasing of each operation (question sentence q, solution line s,
-- with {v} the value before, {b} the operand, {r} the result) and the closing question.
-- Operations: add, sub, mul (factor 2..5), div (exact, 2..6), and buy (subtract a product q * c,
-- two solution lines).
local templates = {}

templates.shopping = {
  start = { q = "{Name} has ${v}.", s = "{Name} starts with ${v}." },
  add = { q = "Then {he} earns ${b} {chore}.", s = "After earning ${b}, {he} has {v} + {b} = ${r}." },
  sub = { q = "{He} spends ${b} on a {item}.", s = "After buying the {item}, {he} has {v} - {b} = ${r}." },
  buy = { q = "{He} buys {q} {things} that cost ${c} each.", s1 = "The {things} cost {q} * {c} = ${t}.",
          s = "{He} has {v} - {t} = ${r} left." },
  mul = { q = "{His} grandmother gives {him} enough to make {his} money {times} as much.",
          s = "{His} money becomes {v} * {b} = ${r}." },
  div = { q = "{He} splits {his} money equally into {b} envelopes, keeps one and gives the others away.",
          s = "One envelope holds {v} / {b} = ${r}." },
  ask = "How many dollars does {Name} have now?",
  words = { chore = { "walking dogs", "selling lemonade", "washing cars", "mowing lawns" },
            item = { "book", "scarf", "board game", "lamp", "backpack" },
            things = { "pencils", "stickers", "apples", "notebooks", "candles" } },
}

templates.factory = {
  start = { q = "A machine makes {a} {things} per hour and runs for {h} hours.", s = "The machine makes {a} * {h} = {v} {things}." },
  add = { q = "Another machine adds {b} more {things}.", s = "With those there are {v} + {b} = {r} {things}." },
  sub = { q = "{b} of the {things} are faulty and thrown away.", s = "After removing the faulty ones, {v} - {b} = {r} {things} remain." },
  buy = { q = "{q} crates of {c} {things} each are shipped to a store.", s1 = "The store gets {q} * {c} = {t} {things}.",
          s = "The factory keeps {v} - {t} = {r} {things}." },
  mul = { q = "By the end of the week the number of {things} has grown to {times} as many.",
          s = "That is {v} * {b} = {r} {things}." },
  div = { q = "The {things} are packed equally into {b} trucks, and one truck is counted.",
          s = "One truck carries {v} / {b} = {r} {things}." },
  ask = "How many {things} are counted at the end?",
  words = { things = { "bolts", "bottles", "toys", "chairs", "widgets" } },
}

templates.sharing = {
  start = { q = "{Name} collects {v} {things}.", s = "{Name} has {v} {things} at first." },
  add = { q = "{His} friend gives {him} {b} more.", s = "Now {he} has {v} + {b} = {r} {things}." },
  sub = { q = "{He} gives {b} {things} to {his} brother.", s = "{He} keeps {v} - {b} = {r} {things}." },
  buy = { q = "{He} gives away {q} bags with {c} {things} in each.", s1 = "The bags hold {q} * {c} = {t} {things}.",
          s = "{He} has {v} - {t} = {r} {things} left." },
  mul = { q = "Over the summer {his} collection grows to {times} its size.", s = "The collection becomes {v} * {b} = {r} {things}." },
  div = { q = "{He} shares all of them equally among {b} friends.", s = "Each friend gets {v} / {b} = {r} {things}." },
  ask = "How many {things} does {Name} have now?",  -- "each friend" after a division (see build)
  words = { things = { "marbles", "stamps", "shells", "cards", "coins" } },
}

templates.travel = {
  start = { q = "{Name} drives away from home at {a} kilometers per hour for {h} hours.",
            s = "{He} is {a} * {h} = {v} kilometers from home." },
  add = { q = "{He} then drives {b} kilometers farther from home.", s = "{He} is {v} + {b} = {r} kilometers from home." },
  sub = { q = "{He} turns around and drives {b} kilometers back toward home.", s = "{He} is {v} - {b} = {r} kilometers from home." },
  buy = { q = "{He} then drives {q} stretches of {c} kilometers each back toward home.",
          s1 = "Those stretches are {q} * {c} = {t} kilometers.", s = "{He} is {v} - {t} = {r} kilometers from home." },
  ask = "How many kilometers from home is {Name} now?",
  words = {},
  ops = { "add", "sub", "buy" },
}

-- Ages read best as a chain of people, each defined from the previous one.
templates.ages = {
  start = { q = "{Name} is {v} years old.", s = "{Name} is {v} years old." },
  add = { q = "{Next} is {b} years older than {Prev}.", s = "{Next} is {v} + {b} = {r} years old." },
  sub = { q = "{Next} is {b} years younger than {Prev}.", s = "{Next} is {v} - {b} = {r} years old." },
  mul = { q = "{Next} is {times} as old as {Prev}.", s = "{Next} is {v} * {b} = {r} years old." },
  div = { q = "{Next} is {fraction} as old as {Prev}.", s = "{Next} is {v} / {b} = {r} years old." },
  ask = "How old is {Last}?",
  words = {},
  chain_people = true,
  max_value = 99,  -- people's ages
  ops = { "add", "sub", "mul", "div" },
}

local template_names = { "shopping", "factory", "sharing", "travel", "ages" }
M.templates = template_names

-- Difficulty levels: steps (operations after the start) and the largest number in a problem.
M.levels = {
  { min_steps = 1, max_steps = 1, max_number = 20 },
  { min_steps = 1, max_steps = 2, max_number = 50 },
  { min_steps = 2, max_steps = 3, max_number = 100 },
  { min_steps = 3, max_steps = 4, max_number = 500 },
  { min_steps = 4, max_steps = 6, max_number = 1000 },
}

local times_word = { [2] = "twice", [3] = "three times", [4] = "four times", [5] = "five times" }
local fraction_word = { [2] = "half", [3] = "a third", [4] = "a quarter" }

-- Divisors of v in [2, hi], for exact divisions.
local function divisors(v, hi)
  local out = {}
  for d = 2, hi do if v % d == 0 and v // d >= 1 then out[#out + 1] = d end end
  return out
end

-- One problem of template `name`, or nil when the chosen operations do not fit (the caller redraws).
local function build(name, r, steps, max_number)
  local t = templates[name]
  local who = r.pick(people)
  local words = {}
  local keys = {}
  for k in pairs(t.words) do keys[#keys + 1] = k end
  table.sort(keys)  -- pairs() order differs between Lua states; the draws must not
  for _, k in ipairs(keys) do words[k] = r.pick(t.words[k]) end
  local base = { Name = who[1], he = who[2], He = cap(who[2]), his = who[3], His = cap(who[3]),
                 him = who[2] == "she" and "her" or "him" }
  for k, v in pairs(words) do base[k] = v end
  local function env(extra)
    local e = {}
    for k, v in pairs(base) do e[k] = v end
    for k, v in pairs(extra) do e[k] = v end
    return e
  end

  local q, s = {}, {}
  local v
  if t.start.q:find("{a}") then
    local a, h = r.int(2, math.max(2, math.min(12, max_number // 2))), r.int(2, 6)
    v = a * h
    if v > max_number then return nil end
    q[#q + 1] = fill(t.start.q, env { a = a, h = h })
    s[#s + 1] = fill(t.start.s, env { a = a, h = h, v = v })
  else
    local hi = math.min(max_number, t.max_value and t.max_value // 2 or max_number)
    v = r.int(math.max(2, hi // 5), hi)
    q[#q + 1] = fill(t.start.q, env { v = v })
    s[#s + 1] = fill(t.start.s, env { v = v })
  end

  local chain = { who[1] }
  local ops = t.ops or { "add", "sub", "buy", "mul", "div" }
  local used_div, last_op = false, nil
  for _ = 1, steps do
    local op = r.pick(ops)
    local e, result
    if op == "add" then
      local b = r.int(2, math.max(2, max_number // 4))
      result, e = v + b, { b = b }
    elseif op == "sub" then
      if v < 4 then return nil end
      local b = r.int(2, v - 2)
      result, e = v - b, { b = b }
    elseif op == "buy" then
      local qn, c = r.int(2, 5), r.int(2, math.max(2, math.min(20, v // 2)))
      if qn * c >= v then return nil end
      result, e = v - qn * c, { q = qn, c = c, t = qn * c }
      s[#s + 1] = fill(t.buy.s1, env { q = qn, c = c, t = qn * c })
    elseif op == "mul" then
      if last_op == "mul" then return nil end
      local b = r.int(2, 5)
      result, e = v * b, { b = b, times = times_word[b] }
    else  -- div
      local ds = divisors(v, t.chain_people and 4 or 6)
      if #ds == 0 or used_div then return nil end
      local b = r.pick(ds)
      used_div = true
      result, e = v // b, { b = b, fraction = fraction_word[b] }
    end
    if result > (t.max_value or max_number * 5) or result < 2 then return nil end  -- >= 2: plural nouns
    e.v, e.r = v, result
    if t.chain_people then
      local nxt
      repeat nxt = r.pick(people)[1] until not table.concat(chain, ","):find(nxt, 1, true)
      e.Prev, e.Next = chain[#chain], nxt
      chain[#chain + 1] = nxt
    end
    q[#q + 1] = fill(t[op].q, env(e))
    s[#s + 1] = fill(t[op].s, env(e))
    v, last_op = result, op
  end
  local ask = fill(t.ask, env { Last = chain[#chain] })
  if name == "sharing" and s[#s]:find("^Each friend") then ask = fill("How many {things} does each friend get?", base) end
  q[#q + 1] = ask
  local answer = string.format("%d", v)
  s[#s + 1] = "The answer is \\boxed{" .. answer .. "}"
  return { question = table.concat(q, " "), solution = table.concat(s, "\n"), answer = answer }
end

-- Options: seed (1), n (100), level (1..#M.levels) or min_steps / max_steps / max_number,
-- templates (names; default all), split ("train", "heldout" or nil = both), heldout_percent (20).
-- Questions are unique within one call.
function M.generate(opts)
  opts = opts or {}
  local level = M.levels[opts.level or 2] or error("problems.generate: level must be 1.." .. #M.levels)
  local min_steps = opts.min_steps or level.min_steps
  local max_steps = opts.max_steps or level.max_steps
  local max_number = opts.max_number or level.max_number
  local names = opts.templates or template_names
  for _, name in ipairs(names) do
    if not templates[name] then error("problems.generate: unknown template '" .. tostring(name) .. "'") end
  end
  if opts.split and opts.split ~= "train" and opts.split ~= "heldout" then
    error("problems.generate: split must be 'train' or 'heldout'")
  end
  local seed, n = opts.seed or 1, opts.n or 100
  local out, seen = {}, {}
  local index, misses = 0, 0
  while #out < n do
    index = index + 1
    -- Settings are part of the stream's seed, so two levels of one seed are not look-alikes.
    local r = rng(seed * 7919 + max_number * 131 + max_steps * 17 + min_steps, index)
    local steps = r.int(min_steps, max_steps)
    local name = names[r.int(1, #names)]
    local p = build(name, r, steps, max_number)
    if p and not seen[p.question] and (not opts.split or M.split_of(p.question, opts.heldout_percent) == opts.split) then
      seen[p.question] = true
      p.template, p.steps = name, steps
      out[#out + 1] = p
      misses = 0
    else
      misses = misses + 1
      if misses > 10000 then error("problems.generate: cannot find more distinct problems with these settings") end
    end
  end
  return out
end

-- The GSM8K layout of a record: {question, answer = worked solution ending "#### N"}.
function M.gsm8k_style(p)
  local body = p.solution:gsub("\n?The answer is \\boxed{[^}]*}$", "")
  return { question = p.question, answer = body .. "\n#### " .. p.answer }
end

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    local named = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
    return named[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

-- One JSON object per line: a record's string, number and boolean fields, keys sorted.
function M.write_jsonl(path, records)
  local f = assert(io.open(path, "w"))
  for _, p in ipairs(records) do
    local keys, fields = {}, {}
    for k in pairs(p) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do
      local v, text = p[k], nil
      if type(v) == "string" then text = json_string(v)
      elseif math.type(v) == "integer" then text = string.format("%d", v)
      elseif type(v) == "number" then text = string.format("%.17g", v)
      elseif type(v) == "boolean" then text = tostring(v)
      end
      if text then fields[#fields + 1] = json_string(k) .. ":" .. text end
    end
    f:write("{", table.concat(fields, ","), "}\n")
  end
  f:close()
  return #records
end

-- generate(opts) written to path; returns the records.
function M.write(path, opts)
  local records = M.generate(opts)
  M.write_jsonl(path, records)
  return records
end

return M
