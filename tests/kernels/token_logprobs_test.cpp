// The chunked token log-prob op against a float64 reference: values, entropy and gradients.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "common/error.h"
#include "token_logprobs.h"

using namespace mathrl;
using namespace mathrl::kernels;

namespace {

struct Case {
  int64_t n, h, v;
  double temperature;
  int64_t chunk;
};

double rel_err(const at::Tensor& a, const at::Tensor& b) {
  return ((a.to(at::kDouble) - b.to(at::kDouble)).norm() / b.to(at::kDouble).norm().clamp_min(1e-30)).item<double>();
}

void check_case(const Case& c) {
  torch::manual_seed(1234 + c.n + c.v);
  at::Tensor hidden = torch::randn({c.n, c.h}) * 0.5, weight = torch::randn({c.v, c.h}) * 0.5;
  at::Tensor targets = torch::randint(0, c.v, {c.n}, torch::kLong);
  at::Tensor g = torch::randn({c.n});

  // Reference in float64, full logits.
  at::Tensor h64 = hidden.to(at::kDouble).requires_grad_(), w64 = weight.to(at::kDouble).requires_grad_();
  at::Tensor logp = torch::log_softmax(torch::matmul(h64, w64.t()) / c.temperature, 1);
  at::Tensor ref = logp.gather(1, targets.unsqueeze(1)).squeeze(1);
  at::Tensor ref_entropy = -(logp.exp() * logp).sum(1);
  (ref * g.to(at::kDouble)).sum().backward();

  at::Tensor h = hidden.clone().requires_grad_(), w = weight.clone().requires_grad_();
  TokenLogprobOptions opt;
  opt.temperature = c.temperature;
  opt.chunk_rows = c.chunk;
  opt.with_entropy = true;
  TokenLogprobs out = token_logprobs(h, w, targets, opt);
  (out.logprobs * g).sum().backward();

  EXPECT_LT(rel_err(out.logprobs, ref.detach()), 1e-5) << "n=" << c.n << " chunk=" << c.chunk;
  EXPECT_LT(rel_err(out.entropy, ref_entropy.detach()), 1e-5);
  EXPECT_LT(rel_err(h.grad(), h64.grad()), 1e-5);
  EXPECT_LT(rel_err(w.grad(), w64.grad()), 1e-5);
  EXPECT_FALSE(out.logprobs.isnan().any().item<bool>());
}

}  // namespace

TEST(TokenLogprobs, MatchesFullSoftmaxReferenceAcrossChunkings) {
  check_case({1, 8, 5, 1.0, 0});
  check_case({37, 16, 301, 1.0, 8});   // uneven last chunk
  check_case({37, 16, 301, 0.7, 37});  // one chunk, temperature
  check_case({64, 32, 1000, 1.3, 1});  // a row per chunk
}

TEST(TokenLogprobs, FusedChunkPassMatchesAten) {
  torch::manual_seed(7);
  at::Tensor logits = torch::randn({9, 513}) * 3;
  at::Tensor targets = torch::randint(0, 513, {9}, torch::kLong);
  at::Tensor lse, tl, ent;
  logsumexp_gather(logits, targets, 0.5, lse, tl, &ent);
  at::Tensor x = logits / 0.5;
  EXPECT_LT(rel_err(lse, at::logsumexp(x, 1)), 1e-6);
  EXPECT_LT(rel_err(tl, x.gather(1, targets.unsqueeze(1)).squeeze(1)), 1e-6);
  // Gradient of sum g * logprob with respect to the logits.
  at::Tensor g = torch::randn({9});
  at::Tensor xr = logits.clone().to(at::kDouble).requires_grad_();
  at::Tensor lp = torch::log_softmax(xr / 0.5, 1).gather(1, targets.unsqueeze(1)).squeeze(1);
  (lp * g.to(at::kDouble)).sum().backward();
  at::Tensor grad_logits = logits.clone();
  logprob_grad_inplace(grad_logits, targets, lse, g, 0.5);
  EXPECT_LT(rel_err(grad_logits, xr.grad()), 1e-5);
}

TEST(TokenLogprobs, RejectsBadInput) {
  at::Tensor hidden = torch::randn({4, 8}), weight = torch::randn({10, 8});
  EXPECT_THROW(token_logprobs(hidden, weight, torch::tensor({0, 1, 2, 10}, torch::kLong)), UsageError);
  EXPECT_THROW(token_logprobs(hidden, weight, torch::tensor({0, -1, 2, 3}, torch::kLong)), UsageError);
  EXPECT_THROW(token_logprobs(hidden, weight, torch::tensor({0, 1}, torch::kLong)), Error);
  EXPECT_THROW(token_logprobs(hidden, torch::randn({10, 7}), torch::tensor({0, 1, 2, 3}, torch::kLong)), Error);
  TokenLogprobOptions bad;
  bad.temperature = 0;
  EXPECT_THROW(token_logprobs(hidden, weight, torch::tensor({0, 1, 2, 3}, torch::kLong), bad), Error);
  // Empty input is fine.
  EXPECT_EQ(token_logprobs(torch::randn({0, 8}), weight, torch::zeros({0}, torch::kLong)).logprobs.numel(), 0);
}
