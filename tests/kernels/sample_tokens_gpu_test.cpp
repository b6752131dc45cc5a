// The fused CUDA sampling kernel against the ATen path on the same GPU logits (label gpu).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include <torch/torch.h>

#include "sample_tokens.h"
#include "token_logprobs.h"

using namespace mathrl::kernels;

namespace {

// Whether `token` is a valid draw for uniform u up to `slack` of CDF rounding: the float64 CDF just
// before it is <= u + slack and the CDF through it is > u - slack.
bool draw_within_rounding(const at::Tensor& row, double t, double u, int64_t token, double slack) {
  auto p = torch::softmax(row.cpu().to(at::kDouble) / t, 0);
  auto cdf = torch::cumsum(p, 0);
  double before = token > 0 ? cdf[token - 1].item<double>() : 0.0, through = cdf[token].item<double>();
  return before <= u + slack && through > u - slack && p[token].item<double>() > 0;
}

}  // namespace

TEST(SampleTokensGpu, KernelMatchesTheAtenPathInEachDtype) {
  if (!torch::cuda::is_available() || !cuda_kernels_available()) GTEST_SKIP() << "no GPU or no CUDA kernels";
  for (int64_t V : {100, 32000, 151936}) {
    for (auto dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
      torch::manual_seed(11);
      const int64_t B = 257;
      auto logits = (torch::randn({B, V}) * 3).to(torch::kCUDA, dtype);
      auto temperature = torch::empty({B}).uniform_(0.6, 1.4).cuda();
      auto uniform = torch::rand({B});
      for (int64_t i = 0; i < B; i += 7) uniform[i] = -1.0f;  // greedy rows
      uniform = uniform.cuda();
      SampledTokens got = sample_tokens(logits, temperature, uniform);
      SampledTokens ref = sample_tokens_reference(logits, temperature, uniform);
      auto tg = got.tokens.cpu(), tr = ref.tokens.cpu();
      int64_t differ = 0;
      for (int64_t i = 0; i < B; ++i) {
        const bool greedy = uniform[i].item<float>() < 0;
        if (tg[i].item<int64_t>() == tr[i].item<int64_t>()) continue;
        ++differ;
        ASSERT_FALSE(greedy) << "greedy row " << i << " V " << V << " " << dtype;
        EXPECT_TRUE(draw_within_rounding(logits[i].to(at::kFloat), temperature[i].item<double>(),
                                         uniform[i].item<double>(), tg[i].item<int64_t>(), 1e-4))
            << "row " << i << " V " << V << " " << dtype;
      }
      // Two summation orders of a float CDF over 32k-152k entries differ by ~1e-6, so a few draws
      // of 257 land on the neighbouring token (each checked above to be a valid draw).
      EXPECT_LE(differ, 10) << "V " << V << " " << dtype;
      // Log-probabilities of the kernel's tokens, against log_softmax in float64.
      auto logp = torch::log_softmax(logits.to(at::kDouble) / torch::where(uniform < 0, torch::ones_like(temperature),
                                                                            temperature).to(at::kDouble).unsqueeze(1), 1);
      auto expected = logp.gather(1, got.tokens.unsqueeze(1)).squeeze(1).cpu();
      EXPECT_LT((got.logprobs.cpu().to(at::kDouble) - expected).abs().max().item<double>(), 1e-3) << V << " " << dtype;
    }
  }
}

TEST(SampleTokensGpu, GreedyTiesAndMaskedEntries) {
  if (!torch::cuda::is_available() || !cuda_kernels_available()) GTEST_SKIP() << "no GPU or no CUDA kernels";
  const int64_t V = 5000;
  auto logits = torch::zeros({3, V});
  logits[0] = 1.0f;                                    // all tied: greedy takes id 0
  logits[1].fill_(-std::numeric_limits<float>::infinity());
  logits[1][4097] = 2.0f;                              // one live entry: every draw lands on it
  logits[1][33] = 2.0f;
  logits[2][V - 1] = 7.0f;                             // greedy finds the last id
  auto uniform = torch::tensor({-1.0f, 0.75f, -1.0f}).cuda();
  for (auto dtype : {at::kFloat, at::kBFloat16}) {
    SampledTokens got = sample_tokens(logits.to(torch::kCUDA, dtype), torch::ones({3}).cuda(), uniform);
    auto t = got.tokens.cpu();
    EXPECT_EQ(t[0].item<int64_t>(), 0);
    EXPECT_EQ(t[1].item<int64_t>(), 4097);  // the second live entry holds the CDF from 0.5 to 1
    EXPECT_EQ(t[2].item<int64_t>(), V - 1);
    EXPECT_NEAR(got.logprobs[1].item<double>(), std::log(0.5), 1e-5);
  }
}
