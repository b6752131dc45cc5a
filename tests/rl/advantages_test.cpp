// Advantage estimators against the formulas, computed independently here.
#include <gtest/gtest.h>

#include <cmath>

#include "common/error.h"
#include "rl/advantages.h"

using namespace mathrl;
using namespace mathrl::rl;

TEST(Advantages, GrpoIsTheGroupZScore) {
  std::vector<double> r = {1, 0, 0, 1, 1, 0, 0, 0};
  double mean = 3.0 / 8, var = 0;
  for (double x : r) var += (x - mean) * (x - mean);
  double sd = std::sqrt(var / 7);  // unbiased, as TRL
  auto a = grpo_advantages(r);
  for (size_t i = 0; i < r.size(); ++i) EXPECT_NEAR(a[i], (r[i] - mean) / (sd + 1e-4), 1e-12);
  auto unscaled = grpo_advantages(r, {false, 1e-4});
  for (size_t i = 0; i < r.size(); ++i) EXPECT_NEAR(unscaled[i], r[i] - mean, 1e-12);
  // A group where every completion got the same reward carries no signal.
  for (double x : grpo_advantages({1, 1, 1, 1})) EXPECT_EQ(x, 0.0);
  EXPECT_THROW(grpo_advantages({1, NAN}), UsageError);
}

TEST(Advantages, RlooLeavesOneOut) {
  std::vector<double> r = {2, 0, 1, 5};
  auto a = rloo_advantages(r);
  EXPECT_NEAR(a[0], 2 - (0 + 1 + 5) / 3.0, 1e-12);
  EXPECT_NEAR(a[3], 5 - (2 + 0 + 1) / 3.0, 1e-12);
  EXPECT_THROW(rloo_advantages({1}), UsageError);
}

TEST(Advantages, ReinforcePlusPlusNormalizesOverTheBatch) {
  std::vector<std::vector<double>> groups = {{1, 0}, {3, 1, 2}};
  auto a = reinforce_pp_baseline_advantages(groups);
  std::vector<double> centred = {0.5, -0.5, 1, -1, 0};
  double var = 0;
  for (double c : centred) var += c * c;  // the centred values have mean 0
  double sd = std::sqrt(var / 4) + 1e-4;
  EXPECT_NEAR(a[0][0], 0.5 / sd, 1e-12);
  EXPECT_NEAR(a[1][1], -1 / sd, 1e-12);
  EXPECT_NEAR(a[1][2], 0.0, 1e-12);
}

TEST(Advantages, ProcessSupervisionSumsLaterNormalizedStepRewards) {
  // Two completions: the first has steps ending at tokens 2 and 5, the second one step at 3.
  std::vector<std::vector<double>> rewards = {{1.0, 0.0}, {0.5}};
  std::vector<std::vector<int>> ends = {{2, 5}, {3}};
  std::vector<int> lengths = {6, 3};
  auto a = process_supervision_advantages(rewards, ends, lengths);
  double mean = 0.5, sd = std::sqrt((0.25 + 0.25 + 0.0) / 2) + 1e-4;
  double n1 = (1.0 - mean) / sd, n2 = (0.0 - mean) / sd, n3 = (0.5 - mean) / sd;
  std::vector<double> first = {n1 + n2, n1 + n2, n2, n2, n2, 0.0};  // token 5 is after the last step
  for (int t = 0; t < 6; ++t) EXPECT_NEAR(a[0][t], first[t], 1e-12) << t;
  for (int t = 0; t < 3; ++t) EXPECT_NEAR(a[1][t], n3, 1e-12);
  EXPECT_THROW(process_supervision_advantages({{1.0}}, {{7}}, {6}), UsageError);
  EXPECT_THROW(process_supervision_advantages({{1.0, 2.0}}, {{3, 3}}, {6}), UsageError);
  EXPECT_THROW(process_supervision_advantages({{1.0}}, {{3, 4}}, {6}), UsageError);
}
