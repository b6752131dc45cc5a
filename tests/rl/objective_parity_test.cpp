// End-to-end parity of the GRPO objective: rewards -> advantages (every variant) -> loss and
// d loss / d logp, against the paper's formulas written here as plain double loops. Fills what
// policy_loss_test.cpp leaves out: unscaled GRPO, REINFORCE++, process supervision from step
// rewards, and the entropy bonus.
#include <gtest/gtest.h>

#include <cmath>

#include <torch/torch.h>

#include "rl/advantages.h"
#include "rl/policy_loss.h"

using namespace mathrl::rl;

namespace {

constexpr int64_t kGroups = 2, kG = 4, B = kGroups * kG, T = 7;
const double kRewards[B] = {1, 0, 0.5, 0, 1, 1, 0, 0.25};

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / v.size();
}
double sample_std(const std::vector<double>& v) {
  double m = mean(v), s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / (v.size() - 1));
}

// Reference advantages [B][T] by variant, from the formulas.
std::vector<std::vector<double>> reference_advantages(const std::string& variant, const std::vector<int>& len,
                                                      const std::vector<std::vector<double>>& step_r,
                                                      const std::vector<std::vector<int>>& step_end) {
  std::vector<std::vector<double>> A(B, std::vector<double>(T, 0.0));
  if (variant == "process") {
    std::vector<double> all;
    for (const auto& s : step_r) all.insert(all.end(), s.begin(), s.end());  // one group: all B
    double m = mean(all), sd = sample_std(all) + 1e-4;
    for (int64_t i = 0; i < B; ++i)
      for (int t = 0; t < len[i]; ++t) {
        double a = 0;  // sum of normalized rewards of steps ending after token t
        for (size_t j = 0; j < step_end[i].size(); ++j)
          if (step_end[i][j] > t) a += (step_r[i][j] - m) / sd;
        A[i][t] = a;
      }
    return A;
  }
  std::vector<double> seq(B);
  std::vector<double> centred_all;
  for (int64_t g = 0; g < kGroups; ++g) {
    std::vector<double> r(kRewards + g * kG, kRewards + (g + 1) * kG);
    double m = mean(r), sd = sample_std(r);
    for (int64_t k = 0; k < kG; ++k) {
      double x = r[k];
      if (variant == "grpo") seq[g * kG + k] = (x - m) / (sd + 1e-4);
      if (variant == "grpo_unscaled") seq[g * kG + k] = x - m;
      if (variant == "rloo") seq[g * kG + k] = x - (m * kG - x) / (kG - 1);
      if (variant == "reinforce++") seq[g * kG + k] = x - m, centred_all.push_back(x - m);
    }
  }
  if (variant == "reinforce++") {
    double sd = sample_std(centred_all) + 1e-4;
    for (double& a : seq) a /= sd;
  }
  for (int64_t i = 0; i < B; ++i)
    for (int64_t t = 0; t < T; ++t) A[i][t] = seq[i];
  return A;
}

// Advantages from the library, [B, T] double.
at::Tensor library_advantages(const std::string& variant, const std::vector<int>& len,
                              const std::vector<std::vector<double>>& step_r,
                              const std::vector<std::vector<int>>& step_end) {
  at::Tensor out = torch::zeros({B, T}, torch::kDouble);
  if (variant == "process") {
    auto a = process_supervision_advantages(step_r, step_end, len);
    for (int64_t i = 0; i < B; ++i)
      for (int t = 0; t < len[i]; ++t) out[i][t] = a[i][t];
    return out;
  }
  std::vector<std::vector<double>> groups;
  for (int64_t g = 0; g < kGroups; ++g) groups.emplace_back(kRewards + g * kG, kRewards + (g + 1) * kG);
  std::vector<double> seq;
  if (variant == "reinforce++") {
    for (const auto& g : reinforce_pp_baseline_advantages(groups)) seq.insert(seq.end(), g.begin(), g.end());
  } else {
    for (const auto& g : groups) {
      auto a = variant == "rloo" ? rloo_advantages(g) : grpo_advantages(g, {variant == "grpo", 1e-4});
      seq.insert(seq.end(), a.begin(), a.end());
    }
  }
  return torch::tensor(seq, torch::kDouble).unsqueeze(1).expand({B, T}).contiguous();
}

}  // namespace

TEST(ObjectiveParity, EveryAdvantageVariantAndAggregationWithEntropy) {
  torch::manual_seed(11);
  auto opts = torch::TensorOptions().dtype(torch::kDouble);
  at::Tensor old = -torch::rand({B, T}, opts) * 2 - 0.1;
  at::Tensor logp0 = old + torch::randn({B, T}, opts) * 0.3;
  at::Tensor ref = old + torch::randn({B, T}, opts) * 0.2;
  at::Tensor ent = torch::rand({B, T}, opts) * 2;  // an entropy input (its own gradient path is tested elsewhere)
  std::vector<int> len(B);
  at::Tensor mask = torch::zeros({B, T}, opts);
  std::vector<std::vector<double>> step_r(B);
  std::vector<std::vector<int>> step_end(B);
  for (int64_t i = 0; i < B; ++i) {
    len[i] = 2 + static_cast<int>((i * 3) % (T - 1));
    for (int t = 0; t < len[i]; ++t) mask[i][t] = 1;
    for (int e = 1; e <= len[i]; e += 2) step_end[i].push_back(e), step_r[i].push_back(std::sin(1.0 + i + e));
    if (step_end[i].back() != len[i] && i % 2 == 0) step_end[i].push_back(len[i]), step_r[i].push_back(0.3 * i);
  }
  int checked = 0;
  for (const std::string variant : {"grpo", "grpo_unscaled", "rloo", "reinforce++", "process"}) {
    auto A = reference_advantages(variant, len, step_r, step_end);
    at::Tensor adv = library_advantages(variant, len, step_r, step_end);
    for (auto loss_type : {LossAggregation::Grpo, LossAggregation::Dapo, LossAggregation::DrGrpo}) {
      for (double entropy_coef : {0.0, 0.01}) {
        PolicyLossOptions o;
        o.loss_type = loss_type;
        o.beta = 0.04;
        o.epsilon = 0.2;
        o.epsilon_high = 0.28;
        o.entropy_coef = entropy_coef;
        o.max_completion_length = 10;
        at::Tensor logp = logp0.clone().requires_grad_();
        PolicyLossOutput out = policy_loss({logp, old, ref, adv, mask, ent}, o);
        out.loss.backward();
        // The paper's objective (negated for minimization), per token, then aggregated.
        double loss = 0, tokens = 0;
        for (int64_t i = 0; i < B; ++i) tokens += len[i];
        for (int64_t i = 0; i < B; ++i) {
          for (int t = 0; t < len[i]; ++t) {
            double lp = logp0[i][t].item<double>(), lo = old[i][t].item<double>(), lr = ref[i][t].item<double>();
            double ratio = std::exp(lp - lo), a = A[i][t];
            double clipped = std::min(std::max(ratio, 1 - o.epsilon), 1 + o.epsilon_high);
            bool unclipped_wins = ratio * a <= clipped * a;
            double term = -std::min(ratio * a, clipped * a);
            double dterm = unclipped_wins ? -a * ratio : 0.0;
            double d = lr - lp;
            term += o.beta * (std::exp(d) - d - 1);  // k3
            dterm += o.beta * (1 - std::exp(d));
            term -= entropy_coef * ent[i][t].item<double>();
            double w = loss_type == LossAggregation::Grpo   ? 1.0 / (B * len[i])
                       : loss_type == LossAggregation::Dapo ? 1.0 / tokens
                                                            : 1.0 / (B * 10.0);
            loss += w * term;
            ASSERT_NEAR(logp.grad()[i][t].item<double>(), w * dterm, 1e-12) << variant << " " << i << "," << t;
          }
          for (int t = len[i]; t < T; ++t) ASSERT_EQ(logp.grad()[i][t].item<double>(), 0.0);
        }
        EXPECT_NEAR(out.loss.item<double>(), loss, 1e-12) << variant;
        for (int64_t i = 0; i < B; ++i)
          for (int t = 0; t < len[i]; ++t) ASSERT_NEAR(adv[i][t].item<double>(), A[i][t], 1e-12) << variant;
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, 5 * 3 * 2);
}
