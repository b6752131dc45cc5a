// kernels::sample_tokens on CPU (the ATen path, also the reference of the CUDA kernel) against a
// float64 inverse CDF written out element by element.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include <torch/torch.h>

#include "common/error.h"
#include "sample_tokens.h"

using namespace mathrl::kernels;

namespace {

// The token the definition gives: the number of CDF entries <= u (clamped), in float64.
int64_t inverse_cdf(const std::vector<double>& scaled, double u) {
  double m = -std::numeric_limits<double>::infinity(), z = 0, c = 0;
  for (double v : scaled) m = std::max(m, v);
  for (double v : scaled) z += std::exp(v - m);
  int64_t count = 0;
  for (double v : scaled) {
    c += std::exp(v - m) / z;
    if (c <= u) ++count;
  }
  return std::min<int64_t>(count, static_cast<int64_t>(scaled.size()) - 1);
}

}  // namespace

TEST(SampleTokens, DrawsByInverseCdfAndReportsLogSoftmaxAtTheTemperature) {
  torch::manual_seed(3);
  const int64_t B = 64, V = 50;
  auto logits = torch::randn({B, V}) * 2;
  auto temperature = torch::empty({B}).uniform_(0.5, 1.5);
  auto uniform = torch::rand({B});
  SampledTokens out = sample_tokens(logits, temperature, uniform);
  ASSERT_EQ(out.tokens.scalar_type(), at::kLong);
  for (int64_t i = 0; i < B; ++i) {
    std::vector<double> scaled(V);
    for (int64_t j = 0; j < V; ++j) scaled[j] = logits[i][j].item<double>() / temperature[i].item<double>();
    EXPECT_EQ(out.tokens[i].item<int64_t>(), inverse_cdf(scaled, uniform[i].item<double>())) << "row " << i;
    auto expected = torch::log_softmax(logits[i].to(at::kDouble) / temperature[i].item<double>(), 0)[out.tokens[i].item<int64_t>()];
    EXPECT_NEAR(out.logprobs[i].item<double>(), expected.item<double>(), 1e-5);
  }
}

TEST(SampleTokens, GreedyRowsTakeTheFirstArgmaxAtTemperatureOne) {
  auto logits = torch::tensor({0.f, 3.f, 3.f, 1.f, 2.f, 5.f, 5.f, 0.f}).reshape({2, 4});
  auto temperature = torch::tensor({0.5f, 2.f});  // ignored by greedy rows
  auto uniform = torch::tensor({-1.f, -1.f});
  SampledTokens out = sample_tokens(logits, temperature, uniform);
  EXPECT_EQ(out.tokens[0].item<int64_t>(), 1);
  EXPECT_EQ(out.tokens[1].item<int64_t>(), 1);
  EXPECT_NEAR(out.logprobs[0].item<double>(), torch::log_softmax(logits[0], 0)[1].item<double>(), 1e-6);
}

TEST(SampleTokens, NeverDrawsAMaskedToken) {
  auto logits = torch::full({1, 6}, -std::numeric_limits<float>::infinity());
  logits[0][2] = 0.f;
  logits[0][4] = 1.f;
  for (float u : {0.0f, 0.2f, 0.5f, 0.9f, 0.999f}) {
    SampledTokens out = sample_tokens(logits, torch::ones({1}), torch::tensor({u}));
    int64_t t = out.tokens[0].item<int64_t>();
    EXPECT_TRUE(t == 2 || t == 4) << "u=" << u << " drew " << t;
  }
}

TEST(SampleTokens, RejectsBadShapes) {
  auto logits = torch::zeros({2, 5});
  EXPECT_THROW(sample_tokens(logits, torch::ones({3}), torch::zeros({2})), mathrl::Error);
  EXPECT_THROW(sample_tokens(logits, torch::ones({2}, torch::kDouble), torch::zeros({2})), mathrl::Error);
  EXPECT_THROW(sample_tokens(torch::zeros({5}), torch::ones({1}), torch::zeros({1})), mathrl::Error);
}
