-- The main job on its small built-in default (CPU, well under a minute).
-- Until the packaged base -> instruct -> RL pipeline lands (see the issues), it runs the pieces
-- that exist on real data: it trains a SentencePiece vocabulary (digits split, as DeepSeekMath
-- does) on GSM8K training text, measures it on the GSM8K test set against the reference
-- tokenizers in ../shared/tokenizers, then builds a small LLaMA-style model on that vocabulary,
-- scores the test problems with it (an untrained model sits near log(1/V) per token), and saves it
-- in Hugging Face layout. Run: build/mathrl run recipes/main.lua
local data = require "data"

return mathrl.script {
  name = "main",
  params = {
    shared = "../shared",
    train_records = 2000,
    test_records = 300,
    vocab_size = 2000,
    model = { hidden_size = 128, intermediate_size = 344, num_hidden_layers = 4, num_attention_heads = 4,
              num_key_value_heads = 2, max_position_embeddings = 1024 },
  },
  main = function(run)
    local p = run.params
    local train = data.read_jsonl(p.shared .. "/data/gsm8k/train.jsonl", p.train_records)
    local test = data.read_jsonl(p.shared .. "/data/gsm8k/test.jsonl", p.test_records)
    local sentences = {}
    for _, ex in ipairs(train) do
      for line in (ex.question .. "\n" .. ex.answer):gmatch("[^\n]+") do sentences[#sentences + 1] = line end
    end
    run.log(string.format("training a %d-token BPE vocabulary on %d lines of GSM8K train", p.vocab_size, #sentences))
    local path = mathrl.tokenizer.train {
      sentences = sentences, prefix = run.dir .. "/gsm8k_bpe", vocab_size = p.vocab_size, split_digits = true,
    }
    local tokenizers = { { "trained", mathrl.tokenizer.load(path) } }
    for _, name in ipairs { "qwen3", "deepseek_v3", "gpt2", "llama2" } do
      tokenizers[#tokenizers + 1] = { name, mathrl.tokenizer.load(p.shared .. "/tokenizers/" .. name) }
    end
    print(string.format("%-12s %8s %10s %12s %s", "tokenizer", "vocab", "tokens", "bytes/token", "round-trip"))
    for i, entry in ipairs(tokenizers) do
      local name, tok = entry[1], entry[2]
      local tokens, bytes, exact = 0, 0, 0
      for _, ex in ipairs(test) do
        local text = ex.question .. "\n" .. ex.answer
        local ids = tok:encode(text)
        tokens, bytes = tokens + #ids, bytes + #text
        if tok:decode(ids) == text then exact = exact + 1 end
      end
      print(string.format("%-12s %8d %10d %12.2f %d/%d", name, tok:vocab_size(), tokens, bytes / tokens, exact, #test))
      run.metric(i, { vocab = tok:vocab_size(), tokens = tokens, bytes_per_token = bytes / tokens, exact_roundtrip = exact })
    end
    local sample = test[1].question
    local trained = tokenizers[1][2]
    local pieces = {}
    for j, id in ipairs(trained:encode(sample)) do pieces[j] = trained:id_to_token(id) end
    print("\nfirst test question, as the trained vocabulary splits it:\n" .. table.concat(pieces, " "))

    local config = { vocab_size = trained:vocab_size(), bos_token_id = trained.bos, eos_token_id = trained.eos }
    for k, v in pairs(p.model) do config[k] = v end
    local model = mathrl.model.new(config, 1)
    local total, count = 0, 0
    for i = 1, math.min(#test, 50) do
      local ids = trained:encode(test[i].question)
      for _, lp in ipairs(model:logprobs(ids)) do total, count = total + lp, count + 1 end
    end
    local c = model:config()
    print(string.format("\nmodel: %d layers, hidden %d, %d heads (%d kv), %.2fM parameters",
      c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.num_key_value_heads, model:parameter_count() / 1e6))
    print(string.format("untrained mean log-prob per token on %d test questions: %.3f (log 1/V = %.3f)",
      math.min(#test, 50), total / count, -math.log(trained:vocab_size())))
    run.metric(0, { untrained_logprob = total / count, parameters = model:parameter_count() })
    model:save(run.dir .. "/model")
    run.log("saved the model to " .. run.dir .. "/model (Hugging Face layout)")
  end,
}
