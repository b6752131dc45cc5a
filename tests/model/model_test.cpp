// The decoder against transformers' fixtures (tests/fixtures/model, scripts/gen_model_fixtures.py):
// per-token log-probabilities, greedy continuations, the KV-cache path, save/load round trips.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <rapidjson/document.h>

#include "common/error.h"
#include "common/jsonl.h"
#include "common/strings.h"
#include "model/checkpoint.h"
#include "model/logprobs.h"
#include "support/test_support.h"

using namespace mathrl;
using namespace mathrl::model;

namespace {

const char* kModels[] = {"llama_gqa", "llama3_rope", "qwen2_bias_tied"};

std::string model_dir(const std::string& name) { return test::fixture("model/" + name); }

std::vector<int32_t> int_list(const rapidjson::Value& v) {
  std::vector<int32_t> out;
  for (const auto& x : v.GetArray()) out.push_back(x.GetInt());
  return out;
}

struct ReferenceLine {
  std::vector<int32_t> ids;
  std::vector<double> logprobs;
};

std::vector<ReferenceLine> reference(const std::string& name) {
  std::vector<ReferenceLine> out;
  LineReader reader(model_dir(name) + "/reference.jsonl");
  std::string line;
  while (reader.next(line)) {
    auto d = parse_json(line, "reference");
    ReferenceLine r;
    r.ids = int_list(d["ids"]);
    for (const auto& x : d["logprobs"].GetArray()) r.logprobs.push_back(x.GetDouble());
    out.push_back(r);
  }
  return out;
}

}  // namespace

TEST(Model, LogprobsMatchTransformers) {
  for (const char* name : kModels) {
    Decoder m = load_decoder(model_dir(name));
    auto refs = reference(name);
    std::vector<std::vector<int32_t>> batch;
    for (const auto& r : refs) batch.push_back(r.ids);
    auto got = sequence_logprobs(m, batch);  // one padded batch of mixed lengths
    ASSERT_EQ(got.size(), refs.size());
    for (size_t i = 0; i < refs.size(); ++i) {
      ASSERT_EQ(got[i].size(), refs[i].logprobs.size()) << name;
      for (size_t t = 0; t < got[i].size(); ++t) ASSERT_NEAR(got[i][t], refs[i].logprobs[t], 1e-4) << name << " " << i << " " << t;
    }
  }
}

TEST(Model, CachedDecodingMatchesFullForwardAndGreedyMatchesTransformers) {
  for (const char* name : kModels) {
    Decoder m = load_decoder(model_dir(name));
    torch::NoGradGuard no_grad;
    LineReader reader(model_dir(name) + "/greedy.jsonl");
    std::string line;
    while (reader.next(line)) {
      auto d = parse_json(line, "greedy");
      std::vector<int32_t> prompt = int_list(d["ids"]), expected = int_list(d["continuation"]);
      // Prefill into slot 2 of a 3-slot cache, copy the prefix to slot 0, decode there.
      KvCache cache = KvCache::allocate(m->config(), 3, 64, at::kFloat, at::kCPU);
      int64_t L = static_cast<int64_t>(prompt.size());
      at::Tensor ids = torch::tensor(std::vector<int64_t>(prompt.begin(), prompt.end())).unsqueeze(0);
      at::Tensor h = m->forward_cached(ids, torch::arange(L).unsqueeze(0), torch::tensor({2L}), cache);
      cache.copy_prefix(2, 0, L);
      int64_t next = m->logits(h.select(1, L - 1)).argmax(-1).item<int64_t>();
      std::vector<int32_t> got;
      std::vector<int64_t> all(prompt.begin(), prompt.end());
      for (size_t step = 0; step < expected.size(); ++step) {
        got.push_back(static_cast<int32_t>(next));
        all.push_back(next);
        int64_t pos = static_cast<int64_t>(all.size()) - 1;
        at::Tensor hs = m->forward_cached(torch::tensor({next}).unsqueeze(0), torch::tensor({pos}).unsqueeze(0),
                                          torch::tensor({0L}), cache);
        // The cached step equals the full forward pass over the whole sequence at that position.
        at::Tensor full = m->hidden_states(torch::tensor(all).unsqueeze(0)).select(1, pos);
        ASSERT_LT((hs.select(1, 0) - full).abs().max().item<double>(), 1e-4) << name;
        next = m->logits(hs.select(1, 0)).argmax(-1).item<int64_t>();
      }
      EXPECT_EQ(got, expected) << name;
    }
  }
}

TEST(Model, SaveAndReloadGiveIdenticalLogitsAlsoSharded) {
  test::TempDir dir;
  for (const char* name : kModels) {
    Decoder m = load_decoder(model_dir(name));
    at::Tensor ids = torch::randint(0, m->config().vocab_size, {2, 9}, torch::kLong);
    torch::NoGradGuard no_grad;
    at::Tensor before = m->logits(m->hidden_states(ids));
    std::string single = dir.file(std::string(name) + "_single"), sharded = dir.file(std::string(name) + "_sharded");
    save_decoder(m, single);
    save_decoder(m, sharded, at::kFloat, 64 * 1024);  // forces several shards
    EXPECT_TRUE(std::filesystem::exists(sharded + "/model.safetensors.index.json"));
    EXPECT_FALSE(std::filesystem::exists(sharded + "/model.safetensors"));
    for (const auto& d : {single, sharded}) {
      Decoder again = load_decoder(d);
      EXPECT_TRUE(at::equal(before, again->logits(again->hidden_states(ids)))) << d;
      EXPECT_EQ(again->config().tie_word_embeddings, m->config().tie_word_embeddings);
      EXPECT_EQ(again->config().rope_scaling.type, m->config().rope_scaling.type);
    }
    // bfloat16 on disk, read back into float32.
    std::string bf = dir.file(std::string(name) + "_bf16");
    save_decoder(m, bf, at::kBFloat16);
    Decoder low = load_decoder(bf);
    EXPECT_LT((low->logits(low->hidden_states(ids)) - before).abs().max().item<double>(), 0.05);
  }
}

TEST(Model, LoadingErrorsNameFileAndTensor) {
  test::TempDir dir;
  Decoder m = load_decoder(model_dir("llama_gqa"));
  auto expect_error = [&](const std::string& d, const std::string& needle) {
    try {
      load_decoder(d);
      ADD_FAILURE() << "no error for " << d;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  // Missing tensor: a model with one more layer than the checkpoint.
  std::string deeper = dir.file("deeper");
  save_decoder(m, deeper);
  std::string cfg = read_file(deeper + "/config.json");
  cfg.replace(cfg.find("\"num_hidden_layers\": 2"), 22, "\"num_hidden_layers\": 3");
  write_file_atomic(deeper + "/config.json", cfg);
  expect_error(deeper, "missing tensor 'model.layers.2.");
  // Unexpected tensor: fewer layers than the checkpoint.
  cfg.replace(cfg.find("\"num_hidden_layers\": 3"), 22, "\"num_hidden_layers\": 1");
  write_file_atomic(deeper + "/config.json", cfg);
  expect_error(deeper, "unexpected tensor 'model.layers.1.");
  // Shape mismatch.
  cfg.replace(cfg.find("\"num_hidden_layers\": 1"), 22, "\"num_hidden_layers\": 2");
  cfg.replace(cfg.find("\"intermediate_size\": 160"), 24, "\"intermediate_size\": 128");
  write_file_atomic(deeper + "/config.json", cfg);
  expect_error(deeper, "does not match the model's");
  // Truncated weights.
  std::string cut = dir.file("cut");
  save_decoder(m, cut);
  std::filesystem::resize_file(cut + "/model.safetensors", std::filesystem::file_size(cut + "/model.safetensors") - 100);
  expect_error(cut, "model.safetensors");
  expect_error(dir.file("absent"), "not a model directory");
}

TEST(Model, RandomInitValueHeadAndConfigChecks) {
  ModelConfig c;
  c.vocab_size = 50;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.max_position_embeddings = 64;
  Decoder m = random_decoder(c, 3);
  int64_t params = 0;
  for (auto& p : m->parameters()) params += p.numel();
  EXPECT_EQ(params, c.parameter_count());
  m->add_value_head();
  at::Tensor h = m->hidden_states(torch::randint(0, 50, {2, 5}, torch::kLong));
  EXPECT_EQ(m->values(h).sizes(), (std::vector<int64_t>{2, 5}));
  c.num_key_value_heads = 3;
  EXPECT_THROW(c.validate(), UsageError);
  c.num_key_value_heads = 2;
  EXPECT_THROW(parse_config("{\"hidden_size\": \"big\"}", "config.json"), DataError);
  EXPECT_THROW(parse_config("{\"rope_scaling\": {\"type\": \"dynamc\", \"factor\": 2.0}}", "config.json"), UsageError);
  // Packed sequences: with document ids, the second document does not see the first.
  Decoder d = random_decoder(c, 4);
  torch::NoGradGuard no_grad;
  at::Tensor a = torch::randint(0, 50, {1, 4}, torch::kLong), b = torch::randint(0, 50, {1, 3}, torch::kLong);
  at::Tensor packed = d->hidden_states(torch::cat({a, b}, 1), torch::tensor(std::vector<int64_t>{0, 1, 2, 3, 0, 1, 2}).unsqueeze(0),
                                       torch::tensor(std::vector<int64_t>{0, 0, 0, 0, 1, 1, 1}).unsqueeze(0));
  at::Tensor alone = d->hidden_states(b);
  EXPECT_LT((packed.narrow(1, 4, 3) - alone).abs().max().item<double>(), 1e-5);
}

TEST(Model, LogprobsCli) {
  std::string input;
  auto refs = reference("qwen2_bias_tied");
  for (const auto& r : refs) {
    input += "{\"ids\": [";
    for (size_t i = 0; i < r.ids.size(); ++i) input += (i ? "," : "") + std::to_string(r.ids[i]);
    input += "]}\n";
  }
  auto res = test::run_mathrl({"logprobs", "--model", model_dir("qwen2_bias_tied"), "--batch-tokens", "40"}, input);
  ASSERT_EQ(res.exit_code, 0) << res.err;
  std::vector<std::string> lines;
  std::stringstream ss(res.out);
  for (std::string l; std::getline(ss, l);) lines.push_back(l);
  ASSERT_EQ(lines.size(), refs.size());
  for (size_t i = 0; i < refs.size(); ++i) {
    auto d = parse_json(lines[i], "out");
    ASSERT_EQ(d["logprobs"].Size(), refs[i].logprobs.size());
    for (size_t t = 0; t < refs[i].logprobs.size(); ++t) EXPECT_NEAR(d["logprobs"][t].GetDouble(), refs[i].logprobs[t], 1e-4);
  }
  auto bad = test::run_mathrl({"logprobs", "--model", model_dir("qwen2_bias_tied")}, "{\"ids\": [1, 2]}\n{\"ids\": [1, 300]}\n");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("<stdin>:2: token id 300 is outside the vocabulary [0, 300)"), std::string::npos) << bad.err;
  bad = test::run_mathrl({"logprobs", "--model", model_dir("qwen2_bias_tied")}, "{\"ids\": []}\n");
  EXPECT_NE(bad.err.find("<stdin>:1: empty ids"), std::string::npos) << bad.err;
  bad = test::run_mathrl({"logprobs", "--model", model_dir("qwen2_bias_tied"), "--dtype", "float33"}, "");
  EXPECT_EQ(bad.exit_code, 2);
}

TEST(Model, ActivationCheckpointingGivesTheSameGradients) {
  Decoder m = load_decoder(model_dir("qwen2_bias_tied"));
  m->train();
  at::Tensor ids = torch::randint(0, m->config().vocab_size, {2, 12}, torch::kLong);
  auto grads = [&](bool checkpointing) {
    m->set_activation_checkpointing(checkpointing);
    m->zero_grad();
    at::Tensor logits = m->logits(m->hidden_states(ids));
    at::Tensor loss = torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}), ids.reshape({-1}));
    loss.backward();
    std::vector<at::Tensor> out;
    for (auto& p : m->parameters()) out.push_back(p.grad().clone());
    return out;
  };
  auto plain = grads(false), checkpointed = grads(true);
  ASSERT_EQ(plain.size(), checkpointed.size());
  for (size_t i = 0; i < plain.size(); ++i) EXPECT_LT((plain[i] - checkpointed[i]).abs().max().item<double>(), 1e-6) << i;
}
