// GAE and the clipped value loss against hand loops; micro-batch planning and group sharding.
#include <gtest/gtest.h>

#include <cmath>

#include <torch/torch.h>

#include "common/error.h"
#include "rl/advantages.h"
#include "rl/sequences.h"
#include "rl/update.h"

using namespace mathrl::rl;

TEST(Gae, MatchesTheDiscountedSumOfTdErrors) {
  std::vector<double> r = {0.1, -0.2, 0.0, 0.5, 1.0}, v = {0.3, 0.1, -0.4, 0.2, 0.6};
  for (double gamma : {1.0, 0.9}) {
    for (double lambda : {0.0, 0.95, 1.0}) {
      Gae g = gae(r, v, gamma, lambda);
      const size_t n = r.size();
      for (size_t t = 0; t < n; ++t) {
        // A_t = sum_l (gamma lambda)^l delta_{t+l}, delta_k = r_k + gamma V_{k+1} - V_k, V_n = 0.
        double a = 0, w = 1;
        for (size_t k = t; k < n; ++k) {
          double next = k + 1 < n ? v[k + 1] : 0.0;
          a += w * (r[k] + gamma * next - v[k]);
          w *= gamma * lambda;
        }
        EXPECT_NEAR(g.advantages[t], a, 1e-12) << gamma << " " << lambda << " " << t;
        EXPECT_NEAR(g.returns[t], a + v[t], 1e-12);
      }
      if (lambda == 1.0 && gamma == 1.0)  // Monte Carlo: return = sum of later rewards
        EXPECT_NEAR(g.returns[0], 0.1 - 0.2 + 0.0 + 0.5 + 1.0, 1e-12);
    }
  }
  EXPECT_THROW(gae({1.0}, {1.0, 2.0}, 1.0, 0.95), mathrl::UsageError);
  EXPECT_THROW(gae({1.0}, {1.0}, 1.5, 0.95), mathrl::UsageError);
}

TEST(Gae, ValueLossClipsAgainstTheOldValues) {
  torch::manual_seed(2);
  auto opts = torch::TensorOptions().dtype(torch::kDouble);
  at::Tensor old = torch::randn({3, 5}, opts), ret = torch::randn({3, 5}, opts);
  at::Tensor v0 = old + torch::randn({3, 5}, opts) * 0.5;
  at::Tensor mask = torch::ones({3, 5}, opts);
  mask[1][4] = 0, mask[2][3] = 0, mask[2][4] = 0;
  for (double clip : {0.0, 0.2}) {
    at::Tensor v = v0.clone().requires_grad_();
    at::Tensor loss = value_loss(v, old, ret, mask, clip);
    loss.backward();
    double ref = 0, n = 0;
    std::vector<double> grad(15, 0);
    for (int i = 0; i < 3; ++i)
      for (int t = 0; t < 5; ++t) n += mask[i][t].item<double>();
    for (int i = 0; i < 3; ++i)
      for (int t = 0; t < 5; ++t) {
        if (mask[i][t].item<double>() == 0) continue;
        double vv = v0[i][t].item<double>(), o = old[i][t].item<double>(), R = ret[i][t].item<double>();
        double a = (vv - R) * (vv - R), da = 2 * (vv - R);
        double term = a, dterm = da;
        if (clip > 0) {
          double c = o + std::min(std::max(vv - o, -clip), clip);
          double b = (c - R) * (c - R), db = std::abs(vv - o) < clip ? 2 * (c - R) : 0.0;
          if (b > a) term = b, dterm = db;
        }
        ref += 0.5 * term / n;
        grad[i * 5 + t] = 0.5 * dterm / n;
      }
    EXPECT_NEAR(loss.item<double>(), ref, 1e-12);
    for (int i = 0; i < 3; ++i)
      for (int t = 0; t < 5; ++t) EXPECT_NEAR(v.grad()[i][t].item<double>(), grad[i * 5 + t], 1e-12);
  }
}

TEST(Microbatches, RespectTheTokenBudgetAndKeepOrder) {
  std::vector<TrainSequence> seqs(7);
  const int lens[7] = {3, 5, 2, 9, 4, 1, 6};
  for (int i = 0; i < 7; ++i) seqs[i].prompt_ids = {1}, seqs[i].completion_ids.assign(lens[i], 2);
  auto plan = plan_microbatches(seqs, 12);
  size_t next = 0;
  for (const auto& mb : plan) {
    int64_t longest = 0;
    for (size_t i : mb) EXPECT_EQ(i, next++), longest = std::max(longest, sequence_length(seqs[i]));
    EXPECT_TRUE(mb.size() == 1 || longest * static_cast<int64_t>(mb.size()) <= 12);
  }
  EXPECT_EQ(next, seqs.size());
  EXPECT_EQ(plan_microbatches(seqs, 1).size(), seqs.size());  // over budget: one sequence each
}

TEST(Microbatches, ShardGroupsKeepsGroupsWholeAndCoversAll) {
  for (int world : {1, 2, 3, 8})
    for (int64_t groups : {0, 1, 5, 16}) {
      int64_t expect = 0;
      for (int r = 0; r < world; ++r) {
        auto [b, e] = shard_groups(groups, r, world);
        EXPECT_EQ(b, expect);
        EXPECT_LE(e - b, groups / world + 1);
        expect = e;
      }
      EXPECT_EQ(expect, groups);
    }
}
