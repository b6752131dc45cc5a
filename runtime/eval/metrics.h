// Evaluation arithmetic: the unbiased pass@k estimator, majority voting over equivalent answers,
// and confidence intervals.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace mathrl::eval {

// Probability that at least one of k samples drawn without replacement from n samples, c of them
// correct, is correct: 1 - C(n-c, k) / C(n, k) (Chen et al., 2021), computed as a stable product.
// Requires 0 <= c <= n and 1 <= k <= n.
double pass_at_k(int n, int c, int k);

// One sampled answer: the extracted final answer (nullopt when none was found) and its verdict.
struct SampledAnswer {
  std::optional<std::string> answer;
  bool correct = false;
};

// Decides whether two extracted answers are the same (the grader's equivalence).
using AnswerEquivalence = std::function<bool(const std::string&, const std::string&)>;

enum class TieBreak {
  Expected,  // a tie is broken uniformly at random: score = correct tied groups / tied groups
  First,     // the group whose first member appears earliest wins
};

// maj@k over samples[0..k): answers are grouped by `equal` (samples without an answer never vote);
// the largest group wins. Returns the score in [0, 1] (fractional only for TieBreak::Expected ties).
double majority_at_k(const std::vector<SampledAnswer>& samples, int k, const AnswerEquivalence& equal,
                     TieBreak tie_break = TieBreak::Expected);

struct Interval {
  double mean = 0, low = 0, high = 0;
};
// 95% Wilson score interval for a proportion of `successes` in `trials`.
Interval wilson_interval(double successes, int trials);
// 95% normal interval for the mean of per-problem scores (pass@k, maj@k): mean +- 1.96 * s / sqrt(n).
Interval mean_interval(const std::vector<double>& values);

}  // namespace mathrl::eval
