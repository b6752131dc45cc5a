// Generation engine over a scripted backend: equals a one-sequence-at-a-time reference for every
// batch size, shares one prefill per prompt, refills freed slots at once, stops on EOS / stop
// strings / length, and rejects bad requests with UsageError.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "common/error.h"
#include "sampler/engine.h"
#include "sampler/text_generate.h"
#include "support/test_support.h"
#include "tokenizer/tokenizer.h"
#include "toy_backend.h"

using namespace mathrl;
using namespace mathrl::sampler;

namespace {

SamplingParams sampled(double t, int64_t k = 0, double p = 1.0, double m = 0.0) {
  SamplingParams s;
  s.temperature = t;
  s.top_k = k;
  s.top_p = p;
  s.min_p = m;
  return s;
}
SamplingParams greedy() {
  SamplingParams s;
  s.greedy = true;
  return s;
}

Request req(std::vector<int32_t> ids, int n, SamplingParams p, uint64_t seed, int max_new, bool ignore_eos = false) {
  Request r;
  r.prompt_ids = std::move(ids);
  r.n = n;
  r.params = p;
  r.seed = seed;
  r.max_new_tokens = max_new;
  r.ignore_eos = ignore_eos;
  return r;
}

// One sequence at a time, no cache: what the engine must reproduce exactly.
Completion reference(const test::ToyBackend& model, const Request& q, int sample, const std::vector<int32_t>& eos) {
  Completion c;
  std::vector<int64_t> seq(q.prompt_ids.begin(), q.prompt_ids.end());
  int max_new = static_cast<int>(std::min<int64_t>(q.max_new_tokens, model.max_context() - static_cast<int64_t>(seq.size())));
  Sampler sampler;
  for (int t = 0; t < max_new; ++t) {
    auto logits = model.logits_for(seq).unsqueeze(0);
    auto r = sampler.sample(logits, {RowSpec{q.params, mix_seed(q.seed, static_cast<uint64_t>(sample)), static_cast<uint64_t>(t)}});
    c.ids.push_back(r.tokens[0]);
    c.logprobs.push_back(r.logprobs[0]);
    seq.push_back(r.tokens[0]);
    if (!q.ignore_eos && std::find(eos.begin(), eos.end(), r.tokens[0]) != eos.end()) {
      c.finish_reason = "eos";
      return c;
    }
  }
  c.finish_reason = "length";
  return c;
}

std::vector<Request> mixed_requests() {
  return {req({3, 4, 5}, 3, sampled(1.0), 11, 12),
          req({7}, 1, greedy(), 0, 9),
          req({2, 9, 9, 1, 4, 6}, 5, sampled(0.8, 8, 0.9, 0.05), 12, 15),
          req({5, 5}, 2, sampled(1.2, 0, 0.7), 13, 20, true),
          req({8, 1, 3, 3}, 4, greedy(), 0, 7),
          req({6, 0}, 2, sampled(0.5, 3), 14, 1)};
}

}  // namespace

// Both ways of serving a prompt's samples: copies of its KV rows, and shared prefixes (where a
// prompt slot reused while a sample still reads it would change that sample's tokens).
TEST(Engine, MatchesSequentialReferenceForEveryBatchSize) {
  const std::vector<int32_t> eos = {1};
  auto requests = mixed_requests();
  for (bool share : {false, true})
  for (int64_t max_batch : {1, 2, 3, 5, 8, 64}) {
    SCOPED_TRACE(share ? "shared prefixes" : "copied prefixes");
    test::ToyBackend model(16, 64, 1, 3.0, share);
    EngineOptions opt;
    opt.max_batch = max_batch;
    opt.eos_ids = eos;
    Engine engine(model, opt);
    auto out = engine.generate(requests);
    size_t k = 0;
    for (size_t r = 0; r < requests.size(); ++r) {
      for (int j = 0; j < requests[r].n; ++j, ++k) {
        ASSERT_LT(k, out.size());
        auto ref = reference(model, requests[r], j, eos);
        EXPECT_EQ(out[k].request, r);
        EXPECT_EQ(out[k].sample, j);
        EXPECT_EQ(out[k].ids, ref.ids) << "max_batch " << max_batch << " request " << r << " sample " << j;
        EXPECT_EQ(out[k].logprobs, ref.logprobs) << "max_batch " << max_batch << " request " << r << " sample " << j;
        EXPECT_EQ(out[k].finish_reason, ref.finish_reason);
        EXPECT_EQ(out[k].prompt_tokens, static_cast<int>(requests[r].prompt_ids.size()));
      }
    }
    EXPECT_EQ(k, out.size());
    EXPECT_LE(model.max_decode_batch, max_batch);
    if (share) EXPECT_EQ(model.copies, 0);
    if (share && max_batch == 64) EXPECT_EQ(model.shares, 11);  // 17 samples of 6 prompts
  }
}

// Peaked logits (scale 12): most samples of a group draw the same tokens for a while, so they
// decode as one row until they diverge. The output must still equal separate decoding, token for
// token, with copied and shared prefixes and when slots are refilled mid-group; the toy backend
// fails any read of a cache position that a diverging sample did not get copied.
TEST(Engine, IdenticalSamplesDecodeOnceAndDivergeExactly) {
  const std::vector<int32_t> eos = {1};
  std::vector<Request> requests = {req({3, 4, 5}, 16, sampled(1.0), 21, 24), req({2, 9}, 8, sampled(0.7), 22, 30),
                                   req({6}, 12, sampled(1.3, 6, 0.95), 23, 18, true), req({8, 1}, 4, greedy(), 0, 12)};
  for (bool share : {false, true})
  for (int64_t max_batch : {3, 7, 64}) {
    SCOPED_TRACE(str(share ? "shared" : "copied", " prefixes, max_batch ", max_batch));
    test::ToyBackend model(16, 64, 5, 12.0, share);
    EngineOptions opt;
    opt.max_batch = max_batch;
    opt.eos_ids = eos;
    Engine engine(model, opt);
    auto out = engine.generate(requests);
    size_t k = 0, distinct_pairs = 0;
    for (size_t r = 0; r < requests.size(); ++r)
      for (int j = 0; j < requests[r].n; ++j, ++k) {
        auto ref = reference(model, requests[r], j, eos);
        EXPECT_EQ(out[k].ids, ref.ids) << "request " << r << " sample " << j;
        EXPECT_EQ(out[k].logprobs, ref.logprobs) << "request " << r << " sample " << j;
        EXPECT_EQ(out[k].finish_reason, ref.finish_reason);
        if (j > 0 && out[k].ids != out[k - 1].ids) ++distinct_pairs;
      }
    const auto& st = engine.stats();
    EXPECT_EQ(st.sampled_rows + static_cast<int64_t>(k), st.generated_tokens);  // first tokens come from prefill
    EXPECT_EQ(st.decoded_rows, model.decoded_rows);
    EXPECT_LT(st.decoded_rows, st.sampled_rows) << "identical samples were not shared";
    // All 40 samples in flight at once: groups stay together longest.
    if (max_batch == 64) EXPECT_LT(st.decoded_rows, st.sampled_rows / 2);
    EXPECT_GT(st.forks, 0) << "no sample diverged: the test does not exercise the copies";
    EXPECT_GT(distinct_pairs, 0u);
    EXPECT_EQ(model.forks, st.forks);
    opt.share_identical_samples = false;
    test::ToyBackend plain(16, 64, 5, 12.0, share);
    Engine separate(plain, opt);
    auto out_plain = separate.generate(requests);
    for (size_t i = 0; i < out.size(); ++i) EXPECT_EQ(out[i].ids, out_plain[i].ids);
    EXPECT_EQ(separate.stats().decoded_rows, separate.stats().sampled_rows);
    EXPECT_EQ(plain.forks, 0);
  }
}

TEST(Engine, SamplesOfOnePromptDifferAndSeedsReproduce) {
  test::ToyBackend model(16, 64);
  Engine engine(model, EngineOptions{});
  std::vector<Request> r = {req({3, 4}, 4, sampled(1.0), 99, 20, true)};
  auto a = engine.generate(r), b = engine.generate(r);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].ids, b[i].ids);
  EXPECT_NE(a[0].ids, a[1].ids);
  r[0].seed = 100;
  auto c = engine.generate(r);
  EXPECT_NE(a[0].ids, c[0].ids);
}

TEST(Engine, OnePrefillPerPromptSharedBySamples) {
  test::ToyBackend model(16, 64);
  Engine engine(model, EngineOptions{});
  std::vector<Request> r = {req({3, 4, 5}, 8, sampled(1.0), 1, 10, true), req({6}, 3, sampled(1.0), 2, 10, true)};
  auto out = engine.generate(r);
  EXPECT_EQ(out.size(), 11u);
  EXPECT_EQ(model.prefills, 2);
  EXPECT_EQ(model.copies, 9);
  EXPECT_EQ(engine.stats().prefills, 2);
  EXPECT_EQ(engine.stats().prefix_copies, 9);
  EXPECT_EQ(engine.stats().generated_tokens, 110);
  // Cache sized to the longest sequence: prompt 3 + 10 new - 1 (the last token is never cached).
  EXPECT_EQ(model.last_max_len, 12);
  EXPECT_EQ(model.last_slots, 11);
}

TEST(Engine, SharedPrefixesNeedNoCopies) {
  test::ToyBackend model(16, 64, 1, 3.0, /*share=*/true);
  Engine engine(model, EngineOptions{});
  std::vector<Request> r = {req({3, 4, 5}, 8, sampled(1.0), 1, 10, true), req({6}, 3, sampled(1.0), 2, 10, true)};
  auto out = engine.generate(r);
  EXPECT_EQ(model.prefills, 2);
  EXPECT_EQ(model.copies, 0);
  EXPECT_EQ(model.shares, 9);
  EXPECT_EQ(engine.stats().prefix_shares, 9);
  EXPECT_EQ(engine.stats().prefix_copies, 0);
  for (int j = 0; j < 8; ++j) EXPECT_EQ(out[j].ids, reference(model, r[0], j, {}).ids);
}

// The prompt's slot stays reserved while its samples run: with 3 slots and n = 3 the second
// request waits for all three, and a prompt slot whose own sample ended first is not reused.
TEST(Engine, PromptSlotIsKeptUntilItsLastSampleEnds) {
  const std::vector<int32_t> eos = {1};
  for (int64_t max_batch : {2, 3, 4}) {
    test::ToyBackend model(16, 64, 7, 3.0, /*share=*/true);
    EngineOptions opt;
    opt.max_batch = max_batch;
    opt.eos_ids = eos;
    Engine engine(model, opt);
    std::vector<Request> r = {req({2, 3}, 3, sampled(1.0), 3, 30), req({4, 4, 4}, 3, sampled(1.0), 4, 30),
                              req({9}, 2, sampled(1.0), 5, 30)};
    auto out = engine.generate(r);
    size_t k = 0;
    for (size_t q = 0; q < r.size(); ++q)
      for (int j = 0; j < r[q].n; ++j, ++k) EXPECT_EQ(out[k].ids, reference(model, r[q], j, eos).ids) << "max_batch " << max_batch;
  }
}

TEST(Engine, FreedSlotTakesNextRequestAtOnce) {
  test::ToyBackend model(16, 64);
  EngineOptions opt;
  opt.max_batch = 2;
  Engine engine(model, opt);
  // One long sequence beside three short ones: with continuous batching the short ones run in the
  // second slot while the long one decodes, so the step count is the long one's alone.
  std::vector<Request> r = {req({1, 2}, 1, greedy(), 0, 10, true), req({3}, 1, greedy(), 0, 2, true),
                            req({4}, 1, greedy(), 0, 2, true), req({5}, 1, greedy(), 0, 2, true)};
  auto out = engine.generate(r);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(engine.stats().decode_steps, 9);
  EXPECT_EQ(model.max_decode_batch, 2);
  for (size_t i = 1; i < 4; ++i) EXPECT_EQ(out[i].ids.size(), 2u);
}

TEST(Engine, SiblingAdmittedLaterCopiesFromLiveSlot) {
  // n = 5 with 2 slots: later samples copy the prompt from a live sibling, or prefill again when
  // none is left; either way outputs equal the reference.
  test::ToyBackend model(16, 64);
  EngineOptions opt;
  opt.max_batch = 2;
  Engine engine(model, opt);
  std::vector<Request> r = {req({2, 3, 4}, 5, sampled(1.0), 5, 6, true)};
  auto out = engine.generate(r);
  for (int j = 0; j < 5; ++j) EXPECT_EQ(out[j].ids, reference(model, r[0], j, {}).ids);
  EXPECT_EQ(model.prefills + model.copies, 5);
  // Shared: a prompt slot serves later samples while any sample reads it, else a new prefill.
  test::ToyBackend shared(16, 64, 1, 3.0, /*share=*/true);
  Engine engine2(shared, opt);
  out = engine2.generate(r);
  for (int j = 0; j < 5; ++j) EXPECT_EQ(out[j].ids, reference(shared, r[0], j, {}).ids);
  EXPECT_EQ(shared.prefills + shared.shares, 5);
  EXPECT_EQ(shared.copies, 0);
}

TEST(Engine, LengthClampedToContext) {
  test::ToyBackend model(16, 10);
  Engine engine(model, EngineOptions{});
  auto out = engine.generate({req({1, 2, 3, 4, 5, 6, 7}, 1, greedy(), 0, 100, true)});
  EXPECT_EQ(out[0].ids.size(), 3u);
  EXPECT_EQ(out[0].finish_reason, "length");
}

TEST(Engine, EosEndsSequenceAndIsKept) {
  test::ToyBackend model(16, 64);
  // Find the greedy first token and declare it EOS.
  auto first = reference(model, req({3, 4}, 1, greedy(), 0, 1), 0, {}).ids[0];
  EngineOptions opt;
  opt.eos_ids = {first};
  Engine engine(model, opt);
  auto out = engine.generate({req({3, 4}, 1, greedy(), 0, 10)});
  EXPECT_EQ(out[0].ids, std::vector<int32_t>{first});
  EXPECT_EQ(out[0].finish_reason, "eos");
  auto ignored = engine.generate({req({3, 4}, 1, greedy(), 0, 10, true)});
  EXPECT_EQ(ignored[0].ids.size(), 10u);
  EXPECT_EQ(ignored[0].finish_reason, "length");
}

TEST(Engine, CallbackSeesEveryCompletion) {
  test::ToyBackend model(16, 64);
  EngineOptions opt;
  opt.max_batch = 3;
  Engine engine(model, opt);
  std::vector<std::pair<size_t, int>> seen;
  auto out = engine.generate(mixed_requests(), [&](const Completion& c) { seen.emplace_back(c.request, c.sample); });
  EXPECT_EQ(seen.size(), out.size());
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(std::unique(seen.begin(), seen.end()), seen.end());
}

TEST(Engine, StopStringsCutTextAndEndSequence) {
  std::string gpt2 = test::shared_dir() + "/tokenizers/gpt2";
  if (!std::filesystem::exists(gpt2)) GTEST_SKIP() << "no " << gpt2;
  auto tok = load_tokenizer(gpt2);
  // GPT-2 ids 0..15 are the single characters ! " # $ % & ' ( ) * + , - . / 0
  test::ToyBackend model(16, 200, 3, 0.1);  // nearly uniform, so every character shows up
  EngineOptions opt;
  opt.tokenizer = tok.get();
  Engine engine(model, opt);
  Request r = req({3, 4}, 6, sampled(1.0), 8, 150, true);
  r.stop = {"#", "()"};
  auto out = engine.generate({r});
  int stopped = 0;
  for (const auto& c : out) {
    std::string full = tok->decode(c.ids);
    if (c.finish_reason == "stop") {
      ++stopped;
      // The stop string completes exactly at the last token and the text ends before it.
      bool ends = full.size() >= 1 && (full.back() == '#' || (full.size() >= 2 && full.substr(full.size() - 2) == "()"));
      EXPECT_TRUE(ends) << full;
      EXPECT_EQ(c.text, full.substr(0, std::min(full.find('#'), full.find("()"))));
      std::string before = tok->decode(std::vector<int32_t>(c.ids.begin(), c.ids.end() - 1));
      EXPECT_EQ(before.find('#'), std::string::npos) << "stopped late: " << full;
      EXPECT_EQ(before.find("()"), std::string::npos) << "stopped late: " << full;
    } else {
      EXPECT_EQ(c.text, full);
      EXPECT_EQ(full.find('#'), std::string::npos);
    }
    // Same tokens as the reference up to the stop.
    auto ref = reference(model, r, c.sample, {}).ids;
    ASSERT_LE(c.ids.size(), ref.size());
    EXPECT_TRUE(std::equal(c.ids.begin(), c.ids.end(), ref.begin()));
  }
  EXPECT_GT(stopped, 0);
  // The tail is decoded only after tokens that may end a stop string ('#' or ')' here).
  EXPECT_GT(engine.stats().stop_checks, 0);
  EXPECT_LT(engine.stats().stop_checks, engine.stats().generated_tokens / 4);
}

TEST(Engine, EosTextExcludesEosToken) {
  std::string gpt2 = test::shared_dir() + "/tokenizers/gpt2";
  if (!std::filesystem::exists(gpt2)) GTEST_SKIP() << "no " << gpt2;
  auto tok = load_tokenizer(gpt2);
  test::ToyBackend model(16, 64);
  auto ref = reference(model, req({3, 4}, 1, greedy(), 0, 5), 0, {});
  EngineOptions opt;
  opt.tokenizer = tok.get();
  opt.eos_ids = {ref.ids[2]};
  Engine engine(model, opt);
  auto out = engine.generate({req({3, 4}, 1, greedy(), 0, 5)});
  auto cut = std::find(ref.ids.begin(), ref.ids.end(), ref.ids[2]);
  std::vector<int32_t> want(ref.ids.begin(), cut + 1);
  EXPECT_EQ(out[0].ids, want);
  EXPECT_EQ(out[0].finish_reason, "eos");
  EXPECT_EQ(out[0].text, tok->decode(std::vector<int32_t>(want.begin(), want.end() - 1)));
}

TEST(Engine, BadRequestsAreUsageErrors) {
  test::ToyBackend model(16, 10);
  Engine engine(model, EngineOptions{});
  auto expect_usage = [&](Request r, const std::string& needle) {
    try {
      engine.generate({req({1}, 1, greedy(), 0, 2), r});
      ADD_FAILURE() << "no error for " << needle;
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("request 1"), std::string::npos) << e.what();
    }
  };
  expect_usage(req({}, 1, greedy(), 0, 5), "empty");
  expect_usage(req(std::vector<int32_t>(10, 1), 1, greedy(), 0, 5), "context");
  expect_usage(req(std::vector<int32_t>(12, 1), 1, greedy(), 0, 5), "context");
  expect_usage(req({1, 16}, 1, greedy(), 0, 5), "outside the vocabulary");
  expect_usage(req({-1}, 1, greedy(), 0, 5), "outside the vocabulary");
  expect_usage(req({1}, 0, greedy(), 0, 5), "'n'");
  expect_usage(req({1}, -3, greedy(), 0, 5), "'n'");
  expect_usage(req({1}, 1, greedy(), 0, 0), "max_new_tokens");
  expect_usage(req({1}, 1, sampled(0.0), 0, 5), "temperature");
  expect_usage(req({1}, 1, sampled(1.0, 0, 2.0), 0, 5), "top_p");
  Request s = req({1}, 1, greedy(), 0, 5);
  s.stop = {"x"};
  expect_usage(s, "tokenizer");
  s.stop = {""};
  expect_usage(s, "empty string");
  EXPECT_EQ(model.allocations, 0);  // nothing ran
  EXPECT_TRUE(engine.generate({}).empty());
  EXPECT_THROW(Engine(model, EngineOptions{0}), UsageError);
}

TEST(Engine, TextGeneratorGivesNCompletionsPerPromptInOrder) {
  std::string gpt2 = test::shared_dir() + "/tokenizers/gpt2";
  if (!std::filesystem::exists(gpt2)) GTEST_SKIP();
  auto tok = load_tokenizer(gpt2);
  test::ToyBackend model(16, 64);
  EngineOptions opt;
  opt.tokenizer = tok.get();
  opt.max_batch = 3;
  Engine engine(model, opt);
  TextGenerateOptions t;
  t.max_new_tokens = 5;
  auto gen = make_text_generator(engine, *tok, t);
  auto out = gen({"#", "$", "%"}, 2);  // single characters: GPT-2 ids 2, 3, 4 (< the toy vocab)
  ASSERT_EQ(out.size(), 3u);
  for (const auto& per_prompt : out) {
    ASSERT_EQ(per_prompt.size(), 2u);
    for (const auto& text : per_prompt) EXPECT_FALSE(text.empty());
  }
  // Direct engine call with the same seeds gives the same text.
  Request r = req({3}, 2, t.params, mix_seed(mix_seed(0, 0), 1), 5);
  auto direct = engine.generate({r});
  EXPECT_EQ(direct[0].text, out[1][0]);
  EXPECT_EQ(direct[1].text, out[1][1]);
}
