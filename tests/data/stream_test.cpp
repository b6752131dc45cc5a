#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <random>

#include "byte_tokenizer.h"
#include "common/error.h"
#include "data/jsonl_source.h"
#include "data/mixed_stream.h"
#include "data/shard_source.h"
#include "support/test_support.h"

using namespace mathrl;
using namespace mathrl::data;
using mathrl::test::ByteTokenizer;

namespace {

// A shard of n EOS-separated documents with lengths in [lo, hi]; document i starts with two tokens
// encoding i, so the test can tell documents apart. Returns the documents.
std::vector<std::vector<int32_t>> make_shard(const std::string& path, int n, int lo, int hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> len(lo, hi), tok(3, 258);
  std::vector<std::vector<int32_t>> docs;
  std::vector<int32_t> all;
  for (int i = 0; i < n; ++i) {
    std::vector<int32_t> d = {3 + i % 250, 3 + i / 250};
    while (static_cast<int>(d.size()) < std::max(lo, 2) || static_cast<int>(d.size()) < len(rng)) d.push_back(tok(rng));
    all.insert(all.end(), d.begin(), d.end());
    all.push_back(2);
    docs.push_back(d);
  }
  write_token_shard(path, all, ShardDtype::U16, 2);
  return docs;
}

SourceConfig shard_source(const std::string& name, const std::string& path, double weight, double epochs = 0,
                          uint64_t max_tokens = 0, bool shuffle = true) {
  SourceConfig c;
  c.name = name;
  c.source = std::make_unique<ShardSource>(path, 2, 259);
  c.weight = weight;
  c.epochs = epochs;
  c.max_tokens = max_tokens;
  c.shuffle = shuffle;
  return c;
}

std::unique_ptr<MixedStream> stream_of(std::vector<SourceConfig> cfgs, uint64_t seed = 7) {
  StreamOptions o;
  o.seed = seed;
  o.warn = [](const std::string&) {};
  return std::make_unique<MixedStream>(std::move(cfgs), o);
}

std::unique_ptr<MixedStream> one(const std::string& path, double epochs, uint64_t max_tokens, bool shuffle,
                                 uint64_t seed) {
  std::vector<SourceConfig> v;
  v.push_back(shard_source("s", path, 1, epochs, max_tokens, shuffle));
  return stream_of(std::move(v), seed);
}

int doc_id(const Document& d) { return (d.tokens[0] - 3) + 250 * (d.tokens[1] - 3); }

std::vector<int> ids_of(MixedStream& s) {
  std::vector<int> ids;
  Document d;
  while (s.next(d)) ids.push_back(doc_id(d));
  return ids;
}

}  // namespace

TEST(MixedStream, TwoSourcesRealize70_30ByTokensOver1M) {
  test::TempDir dir;
  make_shard(dir.file("a.bin"), 400, 10, 200, 1);   // short documents
  make_shard(dir.file("b.bin"), 300, 100, 900, 2);  // long documents: token and document shares differ
  std::vector<SourceConfig> cfgs;
  cfgs.push_back(shard_source("a", dir.file("a.bin"), 0.7, 100));
  cfgs.push_back(shard_source("b", dir.file("b.bin"), 0.3, 100));
  auto s = stream_of(std::move(cfgs));
  uint64_t tokens[2] = {0, 0}, docs[2] = {0, 0};
  Document d;
  while (tokens[0] + tokens[1] < 1000000) {
    ASSERT_TRUE(s->next(d));
    tokens[d.source] += d.tokens.size();
    ++docs[d.source];
  }
  const double total = static_cast<double>(tokens[0] + tokens[1]);
  EXPECT_NEAR(tokens[0] / total, 0.7, 0.02);
  EXPECT_NEAR(tokens[1] / total, 0.3, 0.02);
  const auto mix = s->realized_mix();
  EXPECT_NEAR(mix[0], tokens[0] / total, 1e-12);
  EXPECT_NEAR(mix[1], tokens[1] / total, 1e-12);
  EXPECT_GT(std::abs(static_cast<double>(docs[0]) / (docs[0] + docs[1]) - 0.7), 0.1);  // by tokens, not documents
  EXPECT_EQ(s->tokens(0), tokens[0]);
  EXPECT_NE(s->report().find("a=0.7"), std::string::npos) << s->report();
}

TEST(MixedStream, EpochsRepeatEveryDocumentAndShuffleEachEpoch) {
  test::TempDir dir;
  make_shard(dir.file("s.bin"), 10, 3, 9, 3);
  auto s = one(dir.file("s.bin"), 2, 0, true, 7);
  auto ids = ids_of(*s);
  ASSERT_EQ(ids.size(), 20u);
  std::vector<int> e1(ids.begin(), ids.begin() + 10), e2(ids.begin() + 10, ids.end());
  auto sorted = [](std::vector<int> v) {
    std::sort(v.begin(), v.end());
    return v;
  };
  std::vector<int> all(10);
  for (int i = 0; i < 10; ++i) all[i] = i;
  EXPECT_EQ(sorted(e1), all);
  EXPECT_EQ(sorted(e2), all);
  EXPECT_NE(e1, e2);
  EXPECT_NE(e1, all);
  EXPECT_EQ(s->epoch(0), 1u);
  // Fractional epochs: 1.5 passes = 15 documents.
  EXPECT_EQ(ids_of(*one(dir.file("s.bin"), 1.5, 0, true, 7)).size(), 15u);
  // Default: one pass, in file order without shuffle.
  EXPECT_EQ(ids_of(*one(dir.file("s.bin"), 0, 0, false, 7)), all);
}

TEST(MixedStream, TokenCapCutsTheLastDocumentAndRepeatsEpochs) {
  test::TempDir dir;
  auto docs = make_shard(dir.file("s.bin"), 10, 20, 40, 4);
  uint64_t epoch_tokens = 0;
  for (auto& d : docs) epoch_tokens += d.size();
  const uint64_t cap = epoch_tokens * 2 + 7;  // two passes and a bit: unlimited epochs with a cap
  auto s = one(dir.file("s.bin"), 0, cap, true, 7);
  uint64_t total = 0;
  size_t n = 0;
  Document d;
  while (s->next(d)) {
    total += d.tokens.size();
    ++n;
  }
  EXPECT_EQ(total, cap);
  EXPECT_EQ(n, 21u);
  EXPECT_EQ(s->tokens(0), cap);
  // epochs and a cap together: whichever ends first
  auto both = one(dir.file("s.bin"), 1, 1000000, true, 7);
  EXPECT_EQ(ids_of(*both).size(), 10u);
}

TEST(MixedStream, ShuffleIsDeterministicBySeed) {
  test::TempDir dir;
  make_shard(dir.file("s.bin"), 50, 3, 5, 5);
  const auto a = ids_of(*one(dir.file("s.bin"), 3, 0, true, 11));
  const auto b = ids_of(*one(dir.file("s.bin"), 3, 0, true, 11));
  const auto c = ids_of(*one(dir.file("s.bin"), 3, 0, true, 12));
  ASSERT_EQ(a.size(), 150u);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  // A per-source seed overrides the stream seed.
  std::vector<SourceConfig> v1, v2;
  v1.push_back(shard_source("s", dir.file("s.bin"), 1));
  v1.back().seed = 99;
  v2.push_back(shard_source("s", dir.file("s.bin"), 1));
  v2.back().seed = 99;
  EXPECT_EQ(ids_of(*stream_of(std::move(v1), 1)), ids_of(*stream_of(std::move(v2), 2)));
}

TEST(MixedStream, BadWeightsAreUsageErrors) {
  test::TempDir dir;
  make_shard(dir.file("s.bin"), 5, 3, 5, 6);
  auto build = [&](double wa, double wb) {
    std::vector<SourceConfig> v;
    v.push_back(shard_source("a", dir.file("s.bin"), wa));
    v.push_back(shard_source("b", dir.file("s.bin"), wb));
    return stream_of(std::move(v));
  };
  EXPECT_THROW(build(0.5, -0.1), UsageError);
  EXPECT_THROW(build(std::nan(""), 1), UsageError);
  EXPECT_THROW(build(0, 0), UsageError);
  EXPECT_NO_THROW(build(0, 1));
  // duplicate names
  std::vector<SourceConfig> dup;
  dup.push_back(shard_source("a", dir.file("s.bin"), 1));
  dup.push_back(shard_source("a", dir.file("s.bin"), 1));
  EXPECT_THROW(stream_of(std::move(dup)), UsageError);
  // a weight function that goes negative at a step
  std::vector<SourceConfig> v;
  v.push_back(shard_source("a", dir.file("s.bin"), 1));
  v.back().weight_fn = [](int64_t step) { return step < 5 ? 1.0 : -1.0; };
  auto s = stream_of(std::move(v));
  EXPECT_NO_THROW(s->set_step(4));
  try {
    s->set_step(5);
    FAIL() << "expected UsageError";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("step 5"), std::string::npos) << e.what();
  }
}

TEST(MixedStream, WeightFunctionOfTheStepChangesTheMix) {
  test::TempDir dir;
  make_shard(dir.file("a.bin"), 200, 20, 120, 7);
  make_shard(dir.file("b.bin"), 200, 20, 120, 8);
  std::vector<SourceConfig> v;
  v.push_back(shard_source("a", dir.file("a.bin"), 0, 1000));
  v.back().weight_fn = [](int64_t step) { return step < 10 ? 0.9 : 0.1; };
  v.push_back(shard_source("b", dir.file("b.bin"), 0, 1000));
  v.back().weight_fn = [](int64_t step) { return step < 10 ? 0.1 : 0.9; };
  auto s = stream_of(std::move(v));
  uint64_t tokens[2] = {0, 0};
  Document d;
  for (int64_t step = 0; step < 100; ++step) {
    s->set_step(step);
    for (uint64_t step_tokens = 0; step_tokens < 5000;) {  // 5000 tokens per step
      ASSERT_TRUE(s->next(d));
      tokens[d.source] += d.tokens.size();
      step_tokens += d.tokens.size();
    }
    if (step == 9) {
      EXPECT_NEAR(s->realized_mix()[0], 0.9, 0.02);
      EXPECT_NEAR(tokens[0] / double(tokens[0] + tokens[1]), 0.9, 0.02);
    }
  }
  EXPECT_NEAR(s->realized_mix()[0], 0.1, 0.02);
  EXPECT_NEAR(s->weights()[0], 0.1, 1e-12);
}

TEST(MixedStream, ResumeYieldsExactlyTheUninterruptedDocuments) {
  test::TempDir dir;
  make_shard(dir.file("a.bin"), 37, 5, 60, 9);
  std::string jsonl;
  for (int i = 0; i < 23; ++i)
    jsonl += i % 7 == 3 ? "{broken\n" : "{\"q\": \"question " + std::to_string(i) + "\", \"a\": \"answer " + std::to_string(i * i) + "\"}\n";
  std::ofstream(dir.file("b.jsonl")) << jsonl;
  ByteTokenizer tok;
  auto build = [&](uint64_t seed) {
    std::vector<SourceConfig> v;
    v.push_back(shard_source("a", dir.file("a.bin"), 0, 0, 9000));
    v.back().weight_fn = [](int64_t step) { return 1.0 + (step % 5); };
    SourceConfig b;
    b.name = "b";
    b.source = std::make_unique<JsonlSource>(dir.file("b.jsonl"), prompt_response_mapper("q", "a"), tok);
    b.weight = 2.0;
    b.epochs = 4.5;
    v.push_back(std::move(b));
    return stream_of(std::move(v), seed);
  };
  auto a = build(5);
  std::string state;
  std::vector<Document> after;
  Document d;
  bool saved = false;
  for (int64_t step = 0;; ++step) {
    if (step == 13) {
      state = a->save_state();
      saved = true;
    }
    a->set_step(step);
    bool more = true;
    for (int k = 0; k < 3 && more; ++k) {
      more = a->next(d);
      if (more && saved) after.push_back(d);
    }
    if (!more) break;
  }
  ASSERT_TRUE(saved);
  ASSERT_GT(after.size(), 30u);
  EXPECT_GT(a->skipped(1), 0u);
  auto b = build(5);
  b->load_state(state);
  std::vector<Document> resumed;
  for (int64_t step = 13;; ++step) {
    b->set_step(step);
    bool more = true;
    for (int k = 0; k < 3 && more; ++k) {
      more = b->next(d);
      if (more) resumed.push_back(d);
    }
    if (!more) break;
  }
  ASSERT_EQ(resumed.size(), after.size());
  for (size_t i = 0; i < after.size(); ++i) {
    ASSERT_EQ(resumed[i].source, after[i].source) << i;
    ASSERT_EQ(resumed[i].tokens, after[i].tokens) << i;
    ASSERT_EQ(resumed[i].loss_mask, after[i].loss_mask) << i;
  }
  EXPECT_EQ(b->save_state(), a->save_state());
  EXPECT_EQ(b->report(), a->report());

  // States that do not fit: another seed, other sources, garbage.
  EXPECT_THROW(build(6)->load_state(state), DataError);
  auto other = one(dir.file("a.bin"), 1, 0, true, 5);
  EXPECT_THROW(other->load_state(state), DataError);
  EXPECT_THROW(build(5)->load_state("{\"version\": 1}"), DataError);
  EXPECT_THROW(build(5)->load_state("not json"), DataError);
  std::string wrong_count = state;
  const size_t at = wrong_count.find("\"records\":23");
  ASSERT_NE(at, std::string::npos) << state;
  wrong_count.replace(at, 12, "\"records\":24");
  EXPECT_THROW(build(5)->load_state(wrong_count), DataError);
  // A failed load leaves the stream as it was.
  auto fresh = build(5);
  const std::string before = fresh->save_state();
  EXPECT_THROW(fresh->load_state(wrong_count), DataError);
  EXPECT_EQ(fresh->save_state(), before);
}
