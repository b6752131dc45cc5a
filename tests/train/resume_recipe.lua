-- The CLI resume test's recipe: a tiny base run on GSM8K test text (see stage_test.cpp).
local shared = os.getenv("MATHRL_SHARED_DIR") or "../shared"
local source = os.getenv("MATHRL_SOURCE_DIR") or "."
return mathrl.base {
  name = "resume_test",
  device = "cpu",
  tokenizer = source .. "/tests/fixtures/tokenizer/synth_bytelevel.json",
  model = { hidden_size = 32, intermediate_size = 64, num_hidden_layers = 2, num_attention_heads = 4,
            num_key_value_heads = 2, max_position_embeddings = 128 },
  data = {
    sources = {
      { name = "gsm8k", path = shared .. "/data/gsm8k/test.jsonl", weight = 0.6,
        text = function(ex) return ex.question .. "\n" .. ex.answer end },
      { name = "gsm8k_q", path = shared .. "/data/gsm8k/test.jsonl", weight = 0.4, field = "question" },
    },
  },
  seq_len = 64,
  micro_batch = 2,
  grad_accum = 2,
  steps = 12,
  lr = function(step)
    -- The test interrupts the run from inside, from this step on: SIGINT to mathrl (the shell's
    -- parent), sent in the background because system() ignores SIGINT until the command returns.
    local at = tonumber(os.getenv("MATHRL_TEST_INTERRUPT_AT") or "")
    if at and step == at then os.execute("(sleep 0.05; kill -INT $PPID) &") end
    -- Later steps wait (busy, not in system(), so the signal is not ignored) for the signal to land,
    -- so a fast machine cannot finish the run first.
    if at and step > at then
      local t = os.clock()
      while os.clock() - t < 0.5 do end
    end
    return 2e-3 * math.min(1, step / 3)
  end,
  checkpoint_every = 3,
  keep_last = 2,
  log_every = 100,
}
