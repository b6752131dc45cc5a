-- Writes generated word problems for tests/report/problems_test.cpp: every level, the two splits,
-- and the GSM8K layout. params.seed picks the stream.
local problems = require "problems"

return mathrl.script {
  name = "problems_check",
  params = { seed = 5, n = 40 },
  main = function(run)
    local p = run.params
    for level = 1, #problems.levels do
      problems.write(run.dir .. "/level" .. level .. ".jsonl", { seed = p.seed, n = p.n, level = level })
    end
    problems.write(run.dir .. "/train.jsonl", { seed = p.seed, n = 3 * p.n, level = 3, split = "train" })
    problems.write(run.dir .. "/heldout.jsonl", { seed = p.seed, n = p.n, level = 3, split = "heldout" })
    -- The same stream without a split holds both, so the split really filters.
    local all = problems.generate { seed = p.seed, n = 4 * p.n, level = 3 }
    local counts = { train = 0, heldout = 0 }
    for _, r in ipairs(all) do counts[problems.split_of(r.question)] = counts[problems.split_of(r.question)] + 1 end
    run.metric(0, { train = counts.train, heldout = counts.heldout })
    local gsm = {}
    for _, r in ipairs(problems.generate { seed = p.seed, n = 10, level = 4, templates = { "shopping", "ages" } }) do
      local g = problems.gsm8k_style(r)
      gsm[#gsm + 1] = { question = g.question, answer = g.answer, final = r.answer, template = r.template }
    end
    problems.write_jsonl(run.dir .. "/gsm8k.jsonl", gsm)
    for _, bad in ipairs { { level = 9 }, { templates = { "nope" } }, { split = "test" } } do
      local ok, err = pcall(problems.generate, bad)
      assert(not ok, "expected an error")
      run.log("rejected: " .. tostring(err))
    end
  end,
}
