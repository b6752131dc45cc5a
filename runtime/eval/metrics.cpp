#include "eval/metrics.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"

namespace mathrl::eval {

double pass_at_k(int n, int c, int k) {
  if (n < 1 || k < 1 || k > n || c < 0 || c > n)
    throw UsageError(str("pass@k needs 1 <= k <= n and 0 <= c <= n; got n=", n, " c=", c, " k=", k));
  if (n - c < k) return 1.0;
  // C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (1 - k / i)
  double all_wrong = 1.0;
  for (int i = n - c + 1; i <= n; ++i) all_wrong *= 1.0 - static_cast<double>(k) / i;
  return 1.0 - all_wrong;
}

double majority_at_k(const std::vector<SampledAnswer>& samples, int k, const AnswerEquivalence& equal,
                     TieBreak tie_break) {
  if (k < 1 || k > static_cast<int>(samples.size()))
    throw UsageError(str("maj@k needs 1 <= k <= ", samples.size(), " samples; got k=", k));
  struct Group {
    std::string representative;
    int votes = 0;
    int first = 0;
    bool correct = false;
  };
  std::vector<Group> groups;
  for (int i = 0; i < k; ++i) {
    const auto& s = samples[static_cast<size_t>(i)];
    if (!s.answer) continue;
    auto it = std::find_if(groups.begin(), groups.end(), [&](const Group& g) { return equal(g.representative, *s.answer); });
    if (it == groups.end()) groups.push_back({*s.answer, 1, i, s.correct});
    else ++it->votes;
  }
  if (groups.empty()) return 0.0;
  int best = 0;
  for (const auto& g : groups) best = std::max(best, g.votes);
  std::vector<const Group*> tied;
  for (const auto& g : groups)
    if (g.votes == best) tied.push_back(&g);
  if (tie_break == TieBreak::First) {
    const Group* winner = *std::min_element(tied.begin(), tied.end(), [](auto* a, auto* b) { return a->first < b->first; });
    return winner->correct ? 1.0 : 0.0;
  }
  double correct = 0;
  for (auto* g : tied) correct += g->correct ? 1 : 0;
  return correct / static_cast<double>(tied.size());
}

Interval wilson_interval(double successes, int trials) {
  if (trials <= 0) return {};
  const double z = 1.959963984540054, n = trials, p = successes / n;
  double denom = 1 + z * z / n;
  double center = (p + z * z / (2 * n)) / denom;
  double half = z * std::sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom;
  return {p, std::max(0.0, center - half), std::min(1.0, center + half)};
}

Interval mean_interval(const std::vector<double>& values) {
  if (values.empty()) return {};
  double n = static_cast<double>(values.size()), mean = 0, var = 0;
  for (double v : values) mean += v;
  mean /= n;
  for (double v : values) var += (v - mean) * (v - mean);
  double se = values.size() > 1 ? std::sqrt(var / (n - 1) / n) : 0.0;
  return {mean, mean - 1.959963984540054 * se, mean + 1.959963984540054 * se};
}

}  // namespace mathrl::eval
