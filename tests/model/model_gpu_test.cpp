// On the GPU machine (label gpu): a DeepSeekMath-7B-shaped bf16 forward pass with random weights,
// the fixtures in bf16 on the GPU against the float32 CPU reference, and an export that
// transformers loads (scripts/gen_model_fixtures.py --check-load, run by scripts/gpu_check.sh).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>

#include <c10/cuda/CUDACachingAllocator.h>
#include <torch/torch.h>

#include "model/checkpoint.h"
#include "model/logprobs.h"
#include "support/test_support.h"

using namespace mathrl::model;

namespace {
double peak_gib() {
  auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(0);
  return stats.allocated_bytes[0].peak / double(1ull << 30);
}
}  // namespace

TEST(ModelGpu, DeepSeekMath7BShapeForwardInBf16) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no GPU";
  ModelConfig c;  // DeepSeekMath-7B: LLaMA architecture
  c.vocab_size = 102400;
  c.hidden_size = 4096;
  c.intermediate_size = 11008;
  c.num_hidden_layers = 32;
  c.num_attention_heads = 32;
  c.num_key_value_heads = 32;
  c.max_position_embeddings = 4096;
  Decoder m = random_decoder(c, 1, at::kBFloat16, at::Device(at::kCUDA, 0));
  int64_t params = 0;
  for (auto& p : m->parameters()) params += p.numel();
  torch::InferenceMode guard;
  for (auto [batch, len] : std::vector<std::pair<int64_t, int64_t>>{{1, 2048}, {8, 512}}) {
    at::Tensor ids = torch::randint(0, c.vocab_size, {batch, len}, torch::TensorOptions().dtype(torch::kLong).device(torch::kCUDA));
    c10::cuda::CUDACachingAllocator::resetPeakStats(0);
    for (int warm = 0; warm < 2; ++warm) m->hidden_states(ids);
    torch::cuda::synchronize();
    auto t0 = std::chrono::steady_clock::now();
    const int reps = 5;
    at::Tensor h;
    for (int r = 0; r < reps; ++r) h = m->hidden_states(ids);
    torch::cuda::synchronize();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
    at::Tensor last = m->logits(h.select(1, len - 1));
    ASSERT_FALSE(last.isnan().any().item<bool>());
    double tflops = 2.0 * params * batch * len / s / 1e12;
    std::printf("[7B bf16 forward] params %.2fB batch %lld x %lld: %.1f ms, %.0f tokens/s, ~%.0f TFLOP/s (2*N*tokens), peak %.1f GiB\n",
                params / 1e9, (long long)batch, (long long)len, s * 1e3, batch * len / s, tflops, peak_gib());
  }
}

TEST(ModelGpu, FixturesInBf16MatchTheFloat32Reference) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no GPU";
  for (const char* name : {"llama_gqa", "llama3_rope", "qwen2_bias_tied"}) {
    std::string dir = mathrl::test::fixture(std::string("model/") + name);
    Decoder cpu = load_decoder(dir);
    Decoder gpu = load_decoder(dir, at::kBFloat16, at::Device(at::kCUDA, 0));
    std::vector<std::vector<int32_t>> seqs = {{5, 17, 42, 9, 100, 7, 3, 250, 11, 13}};
    auto a = sequence_logprobs(cpu, seqs)[0], b = sequence_logprobs(gpu, seqs)[0];
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 0.05) << name << " " << i;
  }
}

// The fused CUDA layer path (kernels/fused_layer_ops, fused q/k/v and gate/up projections) in a
// training step: the loss and every parameter's gradient on the GPU equal the CPU's ATen path on the
// same float32 weights (and stay close in bf16).
TEST(ModelGpu, FusedLayersTrainLikeTheCpuPath) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no GPU";
  for (const char* name : {"llama_gqa", "qwen2_bias_tied"}) {
    std::string dir = mathrl::test::fixture(std::string("model/") + name);
    Decoder cpu = load_decoder(dir);
    at::Tensor ids = torch::randint(0, cpu->config().vocab_size, {3, 24}, torch::kLong);
    auto loss_and_grads = [&](Decoder& m, const at::Tensor& tokens) {
      m->zero_grad();
      at::Tensor logits = m->logits(m->hidden_states(tokens)).to(at::kFloat);
      at::Tensor logp = torch::log_softmax(logits.narrow(1, 0, tokens.size(1) - 1), -1);
      at::Tensor loss = -logp.gather(2, tokens.narrow(1, 1, tokens.size(1) - 1).unsqueeze(2)).mean();
      loss.backward();
      std::map<std::string, at::Tensor> grads;
      for (auto& p : m->named_parameters()) grads[p.key()] = p.value().grad().to(at::kCPU, at::kFloat);
      return std::make_pair(loss.item<double>(), grads);
    };
    auto [ref_loss, ref_grads] = loss_and_grads(cpu, ids);
    for (auto dtype : {at::kFloat, at::kBFloat16}) {
      Decoder gpu = load_decoder(dir, dtype, at::Device(at::kCUDA, 0));
      gpu->train();
      auto [loss, grads] = loss_and_grads(gpu, ids.cuda());
      const double tol = dtype == at::kFloat ? 1e-4 : 3e-2;
      EXPECT_NEAR(loss, ref_loss, tol * std::max(1.0, std::abs(ref_loss))) << name << " " << dtype;
      for (auto& [key, g] : ref_grads) {
        ASSERT_TRUE(grads.count(key)) << key;
        const double scale = std::max(g.abs().max().item<double>(), 1e-6);
        EXPECT_LT((grads[key] - g).abs().max().item<double>() / scale, dtype == at::kFloat ? 1e-3 : 0.1)
            << name << " " << dtype << " " << key;
      }
    }
  }
}

TEST(ModelGpu, ExportForTransformers) {
  const char* out = std::getenv("MATHRL_EXPORT_DIR");
  if (!out) GTEST_SKIP() << "set MATHRL_EXPORT_DIR to write an export for scripts/gen_model_fixtures.py --check-load";
  ModelConfig c;
  c.vocab_size = 512;
  c.hidden_size = 128;
  c.intermediate_size = 320;
  c.num_hidden_layers = 3;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 2;
  c.max_position_embeddings = 256;
  c.rope_theta = 500000;
  c.rope_scaling.type = "llama3";
  c.rope_scaling.factor = 8;
  c.rope_scaling.original_max_position_embeddings = 64;
  at::Device dev = torch::cuda::is_available() ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU);
  Decoder m = random_decoder(c, 9, at::kFloat, dev);
  save_decoder(m, out);
  std::vector<int64_t> ids;
  for (int i = 0; i < 40; ++i) ids.push_back((i * 37 + 5) % c.vocab_size);
  torch::NoGradGuard ng;
  at::Tensor logits = m->logits(m->hidden_states(torch::tensor(ids).unsqueeze(0).to(dev)))[0].cpu();
  std::ofstream f(std::string(out) + "/expected_logits.json");
  f << "{\"ids\": [";
  for (size_t i = 0; i < ids.size(); ++i) f << (i ? "," : "") << ids[i];
  f << "], \"logits\": [";
  for (int64_t t = 0; t < logits.size(0); ++t) {
    f << (t ? "," : "") << "[";
    for (int64_t v = 0; v < logits.size(1); ++v) f << (v ? "," : "") << logits[t][v].item<float>();
    f << "]";
  }
  f << "]}";
}
