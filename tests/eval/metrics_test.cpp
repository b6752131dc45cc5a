#include <gtest/gtest.h>

#include <cmath>

#include "common/error.h"
#include "eval/metrics.h"

using namespace mathrl;
using namespace mathrl::eval;

namespace {
// C(n, k) / C(n, k) by the closed form with exact binomials (small n only).
double closed_form_pass_at_k(int n, int c, int k) {
  auto binom = [](int a, int b) {
    if (b < 0 || b > a) return 0.0;
    double r = 1;
    for (int i = 1; i <= b; ++i) r = r * (a - b + i) / i;
    return r;
  };
  return 1.0 - binom(n - c, k) / binom(n, k);
}
bool same(const std::string& a, const std::string& b) { return a == b; }
}  // namespace

TEST(PassAtK, MatchesTheClosedForm) {
  for (int n : {1, 2, 5, 16, 40})
    for (int c = 0; c <= n; ++c)
      for (int k = 1; k <= n; ++k)
        EXPECT_NEAR(pass_at_k(n, c, k), closed_form_pass_at_k(n, c, k), 1e-12) << n << " " << c << " " << k;
  EXPECT_DOUBLE_EQ(pass_at_k(64, 0, 8), 0.0);
  EXPECT_DOUBLE_EQ(pass_at_k(64, 64, 1), 1.0);
  EXPECT_DOUBLE_EQ(pass_at_k(10, 3, 1), 0.3);  // pass@1 is the fraction correct
  // Large n stays finite and in range where the binomials overflow doubles.
  double p = pass_at_k(2000, 7, 1000);
  EXPECT_GT(p, 0.99);
  EXPECT_LE(p, 1.0);
}

TEST(PassAtK, RejectsImpossibleArguments) {
  EXPECT_THROW(pass_at_k(4, 5, 1), UsageError);
  EXPECT_THROW(pass_at_k(4, 2, 5), UsageError);
  EXPECT_THROW(pass_at_k(4, 2, 0), UsageError);
  EXPECT_THROW(pass_at_k(0, 0, 1), UsageError);
}

TEST(MajorityAtK, PicksTheLargestEquivalenceGroup) {
  std::vector<SampledAnswer> s = {{"4", true}, {"5", false}, {"4", true}, {"5", false}, {"5", false}, {std::nullopt, false}};
  EXPECT_DOUBLE_EQ(majority_at_k(s, 1, same), 1.0);
  EXPECT_DOUBLE_EQ(majority_at_k(s, 3, same), 1.0);   // 4,5,4
  EXPECT_DOUBLE_EQ(majority_at_k(s, 5, same), 0.0);   // 4 x2, 5 x3
  EXPECT_DOUBLE_EQ(majority_at_k(s, 6, same), 0.0);   // no answer never votes
  // Grouping uses the equivalence, not string equality: 1/2 and 0.5 are one group.
  auto equiv = [](const std::string& a, const std::string& b) {
    auto v = [](const std::string& x) { return x == "1/2" ? 0.5 : std::stod(x); };
    return v(a) == v(b);
  };
  std::vector<SampledAnswer> t = {{"0.5", true}, {"3", false}, {"1/2", true}, {"3", false}, {"0.50", true}};
  EXPECT_DOUBLE_EQ(majority_at_k(t, 5, equiv), 1.0);
  EXPECT_DOUBLE_EQ(majority_at_k(t, 5, same), 0.0);  // without it, "3" x2 wins
}

TEST(MajorityAtK, TiesAreBrokenAsDocumented) {
  std::vector<SampledAnswer> s = {{"7", false}, {"8", true}, {"8", true}, {"7", false}, {"9", false}, {"9", false}};
  // Three groups of two: one correct of three tied groups.
  EXPECT_NEAR(majority_at_k(s, 6, same, TieBreak::Expected), 1.0 / 3.0, 1e-12);
  EXPECT_DOUBLE_EQ(majority_at_k(s, 6, same, TieBreak::First), 0.0);  // "7" came first
  EXPECT_DOUBLE_EQ(majority_at_k(s, 4, same, TieBreak::Expected), 0.5);
  EXPECT_DOUBLE_EQ(majority_at_k(s, 2, same, TieBreak::First), 0.0);
  EXPECT_THROW(majority_at_k(s, 7, same), UsageError);
  std::vector<SampledAnswer> none = {{std::nullopt, false}, {std::nullopt, false}};
  EXPECT_DOUBLE_EQ(majority_at_k(none, 2, same), 0.0);
}

TEST(Intervals, WilsonAndMean) {
  Interval w = wilson_interval(50, 100);
  EXPECT_DOUBLE_EQ(w.mean, 0.5);
  EXPECT_NEAR(w.low, 0.4038, 1e-3);
  EXPECT_NEAR(w.high, 0.5962, 1e-3);
  Interval z = wilson_interval(0, 20);
  EXPECT_EQ(z.low, 0.0);
  EXPECT_GT(z.high, 0.1);
  Interval m = mean_interval({1, 0, 1, 0});
  EXPECT_DOUBLE_EQ(m.mean, 0.5);
  EXPECT_NEAR(m.high - m.mean, 1.96 * std::sqrt(1.0 / 3.0 / 4.0), 1e-3);
}
