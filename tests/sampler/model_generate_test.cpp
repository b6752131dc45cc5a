// The engine on real decoders (runtime/model, fp32 CPU): greedy output equals transformers' greedy
// `generate` (fixtures from scripts/gen_sampler_fixtures.py), reported log-probabilities equal a
// full-sequence forward, and seeded sampling is the same for every batch size.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "common/jsonl.h"
#include "model/checkpoint.h"
#include "sampler/engine.h"
#include "sampler/model_backend.h"
#include "support/test_support.h"

using namespace mathrl;
using namespace mathrl::sampler;
namespace fs = std::filesystem;

namespace {

struct GreedyCase {
  std::vector<int32_t> ids, output;
  int max_new = 0;
  int64_t eos = -1;
};

std::vector<GreedyCase> read_cases(const std::string& path) {
  std::vector<GreedyCase> cases;
  LineReader in(path);
  std::string line;
  while (in.next(line)) {
    auto d = parse_json(line, path);
    GreedyCase c;
    for (const auto& v : d["ids"].GetArray()) c.ids.push_back(v.GetInt());
    for (const auto& v : d["output"].GetArray()) c.output.push_back(v.GetInt());
    c.max_new = d["max_new_tokens"].GetInt();
    c.eos = d["eos_token_id"].IsNull() ? -1 : d["eos_token_id"].GetInt64();
    cases.push_back(c);
  }
  return cases;
}

// model name -> checkpoint directory
std::vector<std::pair<std::string, std::string>> parity_models() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& e : fs::directory_iterator(test::fixture("sampler"))) {
    std::string f = e.path().filename().string();
    const std::string suffix = "_greedy.jsonl";
    if (f.size() <= suffix.size() || f.substr(f.size() - suffix.size()) != suffix) continue;
    std::string name = f.substr(0, f.size() - suffix.size());
    std::string dir = test::fixture("sampler/" + name);
    if (!fs::exists(dir + "/config.json")) dir = test::fixture("model/" + name);
    if (fs::exists(dir + "/config.json")) out.emplace_back(name, dir);
  }
  std::sort(out.begin(), out.end());
  return out;
}

Request greedy_request(const GreedyCase& c) {
  Request r;
  r.prompt_ids = c.ids;
  r.params.greedy = true;
  r.max_new_tokens = c.max_new;
  r.ignore_eos = c.eos < 0;
  return r;
}

}  // namespace

TEST(ModelGenerate, GreedyMatchesTransformers) {
  auto models = parity_models();
  ASSERT_FALSE(models.empty()) << "no parity fixtures in " << test::fixture("sampler");
  for (const auto& [name, dir] : models) {
    auto cases = read_cases(test::fixture("sampler/" + name + "_greedy.jsonl"));
    ModelBackend backend(model::load_decoder(dir, torch::kFloat32, torch::kCPU), torch::kCPU, torch::kFloat32);
    for (int64_t max_batch : {1, 3, 64}) {
      EngineOptions opt;
      opt.max_batch = max_batch;
      for (const auto& c : cases)
        if (c.eos >= 0) opt.eos_ids = {static_cast<int32_t>(c.eos)};
      Engine engine(backend, opt);
      std::vector<Request> requests;
      for (const auto& c : cases) requests.push_back(greedy_request(c));
      auto out = engine.generate(requests);
      ASSERT_EQ(out.size(), cases.size());
      for (size_t i = 0; i < cases.size(); ++i) {
        EXPECT_EQ(out[i].ids, cases[i].output) << name << " case " << i << " max_batch " << max_batch;
        bool ended_on_eos = cases[i].eos >= 0 && !cases[i].output.empty() && cases[i].output.back() == cases[i].eos;
        EXPECT_EQ(out[i].finish_reason, ended_on_eos ? "eos" : "length") << name << " case " << i;
      }
    }
  }
}

TEST(ModelGenerate, LogprobsEqualFullForward) {
  auto models = parity_models();
  ASSERT_FALSE(models.empty());
  auto dir = models.front().second;
  auto decoder = model::load_decoder(dir, torch::kFloat32, torch::kCPU);
  ModelBackend backend(decoder, torch::kCPU, torch::kFloat32);
  EngineOptions opt;
  opt.max_batch = 4;
  Engine engine(backend, opt);
  Request r;
  r.prompt_ids = {5, 17, 42, 9, 3};
  r.n = 3;
  r.params.temperature = 0.7;
  r.params.top_p = 0.9;
  r.seed = 4;
  r.max_new_tokens = 12;
  r.ignore_eos = true;
  auto out = engine.generate({r});
  torch::NoGradGuard no_grad;
  for (const auto& c : out) {
    std::vector<int64_t> seq(r.prompt_ids.begin(), r.prompt_ids.end());
    seq.insert(seq.end(), c.ids.begin(), c.ids.end());
    auto ids = torch::tensor(seq, torch::kInt64).unsqueeze(0);
    auto logits = decoder->logits(decoder->hidden_states(ids))[0];
    auto lsm = torch::log_softmax(logits.to(torch::kFloat32) / 0.7, -1);
    const int64_t L = static_cast<int64_t>(r.prompt_ids.size());
    for (size_t t = 0; t < c.ids.size(); ++t)
      EXPECT_NEAR(c.logprobs[t], lsm[L - 1 + static_cast<int64_t>(t)][c.ids[t]].item<float>(), 1e-4) << "token " << t;
  }
}

TEST(ModelGenerate, SeededSamplingSameForEveryBatchSize) {
  auto models = parity_models();
  ASSERT_FALSE(models.empty());
  ModelBackend backend(model::load_decoder(models.front().second, torch::kFloat32, torch::kCPU), torch::kCPU, torch::kFloat32);
  std::vector<Request> requests;
  for (int p = 0; p < 4; ++p) {
    Request r;
    r.prompt_ids = {static_cast<int32_t>(10 + p), 20, static_cast<int32_t>(30 + 7 * p)};
    r.n = 3;
    r.params.temperature = 1.0;
    r.params.top_k = 50;
    r.seed = mix_seed(99, static_cast<uint64_t>(p));
    r.max_new_tokens = 10 + 3 * p;
    r.ignore_eos = true;
    requests.push_back(r);
  }
  std::vector<std::vector<int32_t>> first;
  for (int64_t max_batch : {1, 2, 5, 64}) {
    EngineOptions opt;
    opt.max_batch = max_batch;
    Engine engine(backend, opt);
    auto out = engine.generate(requests);
    if (first.empty()) {
      for (const auto& c : out) first.push_back(c.ids);
      continue;
    }
    for (size_t i = 0; i < out.size(); ++i) EXPECT_EQ(out[i].ids, first[i]) << "completion " << i << " max_batch " << max_batch;
  }
}

// Shared prefixes (the default) and copied ones (MATHRL_SHARE_PREFIX=0) read the same keys and
// values, so they give the same tokens and log-probabilities.
TEST(ModelGenerate, SharedPrefixesGiveTheCopiedTokens) {
  auto models = parity_models();
  ASSERT_FALSE(models.empty());
  auto decoder = model::load_decoder(models.front().second, torch::kFloat32, torch::kCPU);
  std::vector<Request> requests;
  for (int p = 0; p < 3; ++p) {
    Request r;
    r.prompt_ids = {static_cast<int32_t>(11 + p), 21, 31, static_cast<int32_t>(41 + 5 * p)};
    r.n = 4;
    r.params.temperature = 0.9;
    r.seed = mix_seed(7, static_cast<uint64_t>(p));
    r.max_new_tokens = 8 + 4 * p;
    r.ignore_eos = true;
    requests.push_back(r);
  }
  auto run = [&](bool share, int64_t max_batch) {
    setenv("MATHRL_SHARE_PREFIX", share ? "1" : "0", 1);
    ModelBackend backend(decoder, torch::kCPU, torch::kFloat32);
    unsetenv("MATHRL_SHARE_PREFIX");
    EXPECT_EQ(backend.shares_prefixes(), share);
    EngineOptions opt;
    opt.max_batch = max_batch;
    Engine engine(backend, opt);
    auto out = engine.generate(requests);
    EXPECT_EQ(engine.stats().prefix_copies > 0, !share);
    EXPECT_EQ(engine.stats().prefix_shares > 0, share);
    return out;
  };
  for (int64_t max_batch : {3, 12}) {
    auto copied = run(false, max_batch), shared = run(true, max_batch);
    ASSERT_EQ(copied.size(), shared.size());
    for (size_t i = 0; i < copied.size(); ++i) {
      EXPECT_EQ(shared[i].ids, copied[i].ids) << "completion " << i << " max_batch " << max_batch;
      // With all 12 in one batch the rows match bit for bit; with 3 slots the batches differ.
      ASSERT_EQ(shared[i].logprobs.size(), copied[i].logprobs.size());
      for (size_t t = 0; t < copied[i].logprobs.size(); ++t)
        EXPECT_NEAR(shared[i].logprobs[t], copied[i].logprobs[t], max_batch == 12 ? 0.0 : 1e-5) << "completion " << i;
    }
  }
}
