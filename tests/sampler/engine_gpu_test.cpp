// The engine on CUDA (label gpu): decode steps as CUDA graphs with the in-place decode attention
// give exactly the tokens of eager steps, and the reported log-probabilities equal a full forward.
#include <gtest/gtest.h>

#include <cstdlib>

#include "model/transformer.h"
#include "sampler/engine.h"
#include "sampler/model_backend.h"

using namespace mathrl;
using namespace mathrl::sampler;

namespace {

model::ModelConfig small_config() {
  model::ModelConfig c;
  c.vocab_size = 512;
  c.hidden_size = 256;
  c.intermediate_size = 512;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;  // head_dim 64: the kernel's shape
  c.num_key_value_heads = 2;
  c.max_position_embeddings = 1024;
  return c;
}

std::vector<Request> requests() {
  std::vector<Request> out;
  for (int p = 0; p < 6; ++p) {
    Request r;
    for (int t = 0; t < 5 + 40 * p; ++t) r.prompt_ids.push_back((7 * t + p) % 500 + 3);
    r.n = 3;
    r.params.temperature = 0.8;
    r.seed = 100 + p;
    r.max_new_tokens = 20 + 60 * p;  // sequences finish at different steps: the batch shrinks through buckets
    r.ignore_eos = true;
    out.push_back(r);
  }
  return out;
}

std::vector<Completion> run(model::Decoder& decoder, torch::ScalarType dtype, bool graphs) {
  setenv("MATHRL_CUDA_GRAPHS", graphs ? "1" : "0", 1);
  ModelBackend backend(decoder, torch::kCUDA, dtype);
  EngineOptions opt;
  opt.max_batch = 16;
  Engine engine(backend, opt);
  auto out = engine.generate(requests());
  EXPECT_EQ(backend.cuda_graphs(), graphs);
  if (graphs) EXPECT_GT(backend.graphs_captured(), 1);
  unsetenv("MATHRL_CUDA_GRAPHS");
  return out;
}

}  // namespace

TEST(EngineGpu, CudaGraphsGiveTheEagerTokens) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no GPU";
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    auto decoder = model::random_decoder(small_config(), 3, dtype, torch::kCUDA);
    auto eager = run(decoder, dtype, false), graphed = run(decoder, dtype, true);
    ASSERT_EQ(eager.size(), graphed.size());
    for (size_t i = 0; i < eager.size(); ++i) {
      EXPECT_EQ(graphed[i].ids, eager[i].ids) << "completion " << i << " " << dtype;
      ASSERT_EQ(graphed[i].logprobs.size(), eager[i].logprobs.size());
      for (size_t t = 0; t < eager[i].logprobs.size(); ++t)
        EXPECT_FLOAT_EQ(graphed[i].logprobs[t], eager[i].logprobs[t]) << "completion " << i << " token " << t;
    }
  }
}

// Shared prefixes (MATHRL_SHARE_PREFIX=1) against copies, with graphs: in float32 the decode kernel
// reads the same values either way, so the tokens agree exactly.
TEST(EngineGpu, SharedPrefixesGiveTheCopiedTokensInFloat32) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no GPU";
  auto decoder = model::random_decoder(small_config(), 5, torch::kFloat32, torch::kCUDA);
  setenv("MATHRL_SHARE_PREFIX", "1", 1);
  auto shared = run(decoder, torch::kFloat32, true);
  setenv("MATHRL_SHARE_PREFIX", "0", 1);
  auto copied = run(decoder, torch::kFloat32, true);
  unsetenv("MATHRL_SHARE_PREFIX");
  ASSERT_EQ(shared.size(), copied.size());
  for (size_t i = 0; i < shared.size(); ++i) EXPECT_EQ(shared[i].ids, copied[i].ids) << "completion " << i;
}

TEST(EngineGpu, LogprobsEqualFullForwardInFloat32) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no GPU";
  auto decoder = model::random_decoder(small_config(), 4, torch::kFloat32, torch::kCUDA);
  auto out = run(decoder, torch::kFloat32, true);
  auto reqs = requests();
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < out.size(); i += 4) {
    const auto& r = reqs[out[i].request];
    std::vector<int64_t> seq(r.prompt_ids.begin(), r.prompt_ids.end());
    seq.insert(seq.end(), out[i].ids.begin(), out[i].ids.end());
    auto ids = torch::tensor(seq, torch::kInt64).unsqueeze(0).cuda();
    auto lsm = torch::log_softmax(decoder->logits(decoder->hidden_states(ids))[0].to(torch::kFloat32) / 0.8, -1).cpu();
    const int64_t L = static_cast<int64_t>(r.prompt_ids.size());
    for (size_t t = 0; t < out[i].ids.size(); ++t)
      EXPECT_NEAR(out[i].logprobs[t], lsm[L - 1 + static_cast<int64_t>(t)][out[i].ids[t]].item<float>(), 2e-3)
          << "completion " << i << " token " << t;
  }
}
