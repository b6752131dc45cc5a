// The policy objective against an independent element-by-element reference: loss and d loss / d logp
// for every loss aggregation, KL estimator and advantage shape.
#include <gtest/gtest.h>

#include <cmath>

#include <torch/torch.h>

#include "common/error.h"
#include "rl/advantages.h"
#include "rl/policy_loss.h"

using namespace mathrl::rl;

namespace {

struct Reference {
  double loss = 0;
  std::vector<std::vector<double>> grad;
};

Reference reference(const at::Tensor& logp_t, const at::Tensor& old_t, const at::Tensor& ref_t, const at::Tensor& adv_t,
                    const at::Tensor& mask_t, const PolicyLossOptions& o) {
  auto logp = logp_t.accessor<double, 2>();
  auto old = old_t.accessor<double, 2>();
  auto ref = ref_t.accessor<double, 2>();
  auto adv = adv_t.accessor<double, 2>();
  auto mask = mask_t.accessor<double, 2>();
  const int64_t B = logp_t.size(0), T = logp_t.size(1);
  double total_tokens = 0;
  std::vector<double> seq_tokens(B, 0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) seq_tokens[b] += mask[b][t], total_tokens += mask[b][t];
  Reference r;
  r.grad.assign(B, std::vector<double>(T, 0));
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < T; ++t) {
      if (mask[b][t] == 0) continue;
      double ratio = std::exp(logp[b][t] - old[b][t]), A = adv[b][t];
      double clipped = std::min(std::max(ratio, 1 - o.epsilon), 1 + o.epsilon_high);
      double term = -std::min(ratio * A, clipped * A);
      double dterm = ratio * A <= clipped * A ? -A * ratio : 0.0;
      double d = ref[b][t] - logp[b][t];
      if (o.beta != 0) {
        if (o.kl == KlEstimator::K3) term += o.beta * (std::exp(d) - d - 1), dterm += o.beta * (1 - std::exp(d));
        if (o.kl == KlEstimator::K1) term += o.beta * (-d), dterm += o.beta;
        if (o.kl == KlEstimator::K2) term += o.beta * 0.5 * d * d, dterm += o.beta * (-d);
      }
      double weight = o.loss_type == LossAggregation::Grpo ? 1.0 / (B * seq_tokens[b])
                      : o.loss_type == LossAggregation::Dapo ? 1.0 / total_tokens
                                                             : 1.0 / (B * (o.max_completion_length ? o.max_completion_length : T));
      r.loss += weight * term;
      r.grad[b][t] = weight * dterm;
    }
  }
  return r;
}

}  // namespace

TEST(PolicyLoss, MatchesTheReferenceForEveryVariant) {
  torch::manual_seed(5);
  const int64_t B = 6, T = 9;
  auto opts = torch::TensorOptions().dtype(torch::kDouble);
  at::Tensor old = -torch::rand({B, T}, opts) * 3;
  at::Tensor logp0 = old + torch::randn({B, T}, opts) * 0.3;  // ratios on both sides of the clip range
  at::Tensor ref = old + torch::randn({B, T}, opts) * 0.2;
  at::Tensor mask = torch::ones({B, T}, opts);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 3 + b % 5; t < T; ++t) mask[b][t] = 0;  // ragged completions

  // Advantages from each estimator over two groups of three completions.
  std::vector<double> rewards = {1, 0, 0, 1, 1, 0};
  std::vector<at::Tensor> advantage_sets;
  {
    auto g1 = grpo_advantages({rewards.begin(), rewards.begin() + 3});
    auto g2 = grpo_advantages({rewards.begin() + 3, rewards.end()});
    g1.insert(g1.end(), g2.begin(), g2.end());
    advantage_sets.push_back(torch::tensor(g1, opts).unsqueeze(1).expand({B, T}).contiguous());
    auto r1 = rloo_advantages({rewards.begin(), rewards.begin() + 3});
    auto r2 = rloo_advantages({rewards.begin() + 3, rewards.end()});
    r1.insert(r1.end(), r2.begin(), r2.end());
    advantage_sets.push_back(torch::tensor(r1, opts).unsqueeze(1).expand({B, T}).contiguous());
    advantage_sets.push_back(torch::randn({B, T}, opts));  // per-token (process supervision)
  }
  for (auto loss_type : {LossAggregation::Grpo, LossAggregation::Dapo, LossAggregation::DrGrpo}) {
    for (auto kl : {KlEstimator::K1, KlEstimator::K2, KlEstimator::K3}) {
      for (double beta : {0.0, 0.04}) {
        for (const auto& adv : advantage_sets) {
          PolicyLossOptions o;
          o.loss_type = loss_type;
          o.kl = kl;
          o.beta = beta;
          o.epsilon = 0.2;
          o.epsilon_high = 0.28;
          o.max_completion_length = loss_type == LossAggregation::DrGrpo ? 16 : 0;
          at::Tensor logp = logp0.clone().requires_grad_();
          PolicyLossInputs in{logp, old, ref, adv, mask, {}};
          PolicyLossOutput out = policy_loss(in, o);
          out.loss.backward();
          Reference r = reference(logp0, old, ref, adv, mask, o);
          EXPECT_NEAR(out.loss.item<double>(), r.loss, 1e-12);
          for (int64_t b = 0; b < B; ++b)
            for (int64_t t = 0; t < T; ++t) ASSERT_NEAR(logp.grad()[b][t].item<double>(), r.grad[b][t], 1e-12) << b << "," << t;
        }
      }
    }
  }
}

TEST(PolicyLoss, SequenceAdvantagesBroadcastAndMetrics) {
  auto opts = torch::TensorOptions().dtype(torch::kDouble);
  at::Tensor old = torch::zeros({2, 3}, opts);
  at::Tensor logp = torch::tensor({{0.5, 0.0, -0.5}, {0.0, 0.0, 0.0}}, opts).requires_grad_();
  at::Tensor mask = torch::tensor({{1.0, 1.0, 1.0}, {1.0, 1.0, 0.0}}, opts);
  PolicyLossOptions o;
  o.beta = 0;
  PolicyLossOutput out = policy_loss({logp, old, {}, torch::tensor({1.0, -1.0}, opts), mask, {}}, o);
  // exp(0.5) = 1.65 > 1.2 with A > 0: clipped high; exp(-0.5) = 0.61 < 0.8 with A > 0: not clipped.
  EXPECT_NEAR(out.clip_fraction_high, 1.0 / 5, 1e-12);
  EXPECT_NEAR(out.clip_fraction_low, 0.0, 1e-12);
  EXPECT_NEAR(out.ratio_mean, (std::exp(0.5) + 1 + std::exp(-0.5) + 2) / 5, 1e-12);
  EXPECT_THROW(parse_loss_type("grp"), mathrl::UsageError);
  EXPECT_EQ(parse_kl_estimator("k2"), KlEstimator::K2);
}
