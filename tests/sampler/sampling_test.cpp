// Sampling chain: filters against a plain-loop reference (transformers' rules), greedy, reported
// log-probabilities, seeded reproducibility independent of batch composition, and the empirical
// distribution of draws.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "common/error.h"
#include "sampler/sampling.h"

using namespace mathrl;
using namespace mathrl::sampler;

namespace {

// transformers' warpers, written out with loops in double precision: temperature, top-k, top-p
// (sort ascending, drop tokens whose ascending cumulative mass <= 1 - top_p, keep >= 1), min-p
// (drop p < min_p * p_max). Returns the renormalized distribution.
std::vector<double> reference_probs(const std::vector<float>& logits, const SamplingParams& p) {
  const size_t V = logits.size();
  std::vector<double> l(V);
  for (size_t i = 0; i < V; ++i) l[i] = logits[i] / p.temperature;
  std::vector<bool> alive(V, true);
  auto softmax = [&]() {
    double mx = -1e300;
    for (size_t i = 0; i < V; ++i)
      if (alive[i]) mx = std::max(mx, l[i]);
    std::vector<double> pr(V, 0.0);
    double z = 0;
    for (size_t i = 0; i < V; ++i)
      if (alive[i]) z += (pr[i] = std::exp(l[i] - mx));
    for (auto& x : pr) x /= z;
    return pr;
  };
  std::vector<size_t> order(V);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return l[a] > l[b]; });
  if (p.top_k > 0)
    for (size_t r = static_cast<size_t>(p.top_k); r < V; ++r) alive[order[r]] = false;
  if (p.top_p < 1.0) {
    auto pr = softmax();
    double cum = 0;
    for (size_t r = V; r-- > 1;) {  // ascending = reverse of the descending order; the top one stays
      cum += pr[order[r]];
      if (cum <= 1.0 - p.top_p) alive[order[r]] = false;
    }
  }
  if (p.min_p > 0.0) {
    auto pr = softmax();
    double mx = *std::max_element(pr.begin(), pr.end());
    for (size_t i = 0; i < V; ++i)
      if (pr[i] < p.min_p * mx) alive[i] = false;
  }
  return softmax();
}

torch::Tensor random_logits(int64_t B, int64_t V, uint64_t seed, double scale = 2.0) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return torch::randn({B, V}, gen, torch::kFloat32) * scale;
}

std::vector<float> row_of(const torch::Tensor& t, int64_t i) {
  auto r = t[i].contiguous();
  return std::vector<float>(r.data_ptr<float>(), r.data_ptr<float>() + r.numel());
}

SamplingParams sp(double temp, int64_t k, double top_p, double min_p) {
  SamplingParams p;
  p.temperature = temp;
  p.top_k = k;
  p.top_p = top_p;
  p.min_p = min_p;
  return p;
}

}  // namespace

TEST(Sampling, FiltersMatchReference) {
  const std::vector<SamplingParams> cases = {
      sp(1.0, 0, 1.0, 0.0),  sp(0.7, 0, 1.0, 0.0),  sp(1.0, 5, 1.0, 0.0),   sp(1.0, 0, 0.9, 0.0),
      sp(1.0, 0, 1.0, 0.1),  sp(0.6, 10, 0.95, 0.0), sp(1.3, 20, 0.8, 0.05), sp(1.0, 1, 1.0, 0.0),
      sp(1.0, 0, 0.05, 0.0), sp(1.0, 0, 1.0, 0.9),  sp(0.5, 50, 0.5, 0.2),  sp(1.0, 200, 1.0, 0.0)};
  const int64_t V = 50;
  auto logits = random_logits(static_cast<int64_t>(cases.size()), V, 7);
  std::vector<RowSpec> rows;
  for (const auto& c : cases) rows.push_back(RowSpec{c, 1, 0});
  Sampler sampler;
  auto probs = sampler.filtered_probs(logits, rows);  // all rows in one batch, each with its own params
  for (size_t i = 0; i < cases.size(); ++i) {
    auto ref = reference_probs(row_of(logits, static_cast<int64_t>(i)), cases[i]);
    auto got = row_of(probs, static_cast<int64_t>(i));
    int ref_kept = 0, got_kept = 0;
    for (int64_t v = 0; v < V; ++v) {
      EXPECT_NEAR(got[v], ref[v], 1e-5) << "case " << i << " token " << v;
      ref_kept += ref[v] > 0;
      got_kept += got[v] > 0;
    }
    EXPECT_EQ(got_kept, ref_kept) << "case " << i;
  }
}

TEST(Sampling, FilterCountsOnKnownDistribution) {
  // probabilities 0.5, 0.25, 0.125, 0.0625, 0.0625
  std::vector<float> p = {0.5f, 0.25f, 0.125f, 0.0625f, 0.0625f};
  auto logits = torch::log(torch::tensor(p)).unsqueeze(0);
  Sampler sampler;
  auto kept = [&](SamplingParams params) {
    auto pr = sampler.filtered_probs(logits, {RowSpec{params, 0, 0}});
    return (pr > 0).sum().item<int64_t>();
  };
  EXPECT_EQ(kept(sp(1, 2, 1.0, 0)), 2);
  EXPECT_EQ(kept(sp(1, 0, 0.5, 0)), 1);   // mass before token 1 is 0.5, not < 0.5
  EXPECT_EQ(kept(sp(1, 0, 0.7, 0)), 2);
  EXPECT_EQ(kept(sp(1, 0, 0.8, 0)), 3);
  EXPECT_EQ(kept(sp(1, 0, 1.0, 0.25)), 3);  // p >= 0.125
  EXPECT_EQ(kept(sp(1, 0, 1.0, 0.3)), 2);
  EXPECT_EQ(kept(sp(1, 3, 1.0, 0.2)), 3);
}

TEST(Sampling, GreedyIsArgmaxWithTemperatureOneLogprob) {
  auto logits = random_logits(6, 40, 3);
  SamplingParams g;
  g.greedy = true;
  std::vector<RowSpec> rows(6, RowSpec{g, 0, 0});
  auto res = Sampler().sample(logits, rows);
  auto lsm = torch::log_softmax(logits, -1);
  auto am = logits.argmax(-1);
  for (int64_t i = 0; i < 6; ++i) {
    EXPECT_EQ(res.tokens[i], am[i].item<int64_t>());
    EXPECT_NEAR(res.logprobs[i], lsm[i][res.tokens[i]].item<float>(), 1e-5);
  }
}

TEST(Sampling, GreedyTiesPickLowestId) {
  auto logits = torch::tensor({0.0f, 3.0f, 1.0f, 3.0f}).unsqueeze(0);
  SamplingParams g;
  g.greedy = true;
  EXPECT_EQ(Sampler().sample(logits, {RowSpec{g, 0, 0}}).tokens[0], 1);
}

TEST(Sampling, LogprobIsFullDistributionAtTemperature) {
  auto logits = random_logits(4, 30, 11);
  std::vector<RowSpec> rows = {RowSpec{sp(0.7, 5, 1.0, 0), 1, 0}, RowSpec{sp(1.0, 0, 0.9, 0), 2, 0},
                               RowSpec{sp(1.5, 0, 1.0, 0.1), 3, 0}, RowSpec{sp(1.0, 0, 1.0, 0), 4, 0}};
  auto res = Sampler().sample(logits, rows);
  for (int64_t i = 0; i < 4; ++i) {
    auto lsm = torch::log_softmax(logits[i] / rows[i].params.temperature, -1);
    EXPECT_NEAR(res.logprobs[i], lsm[res.tokens[i]].item<float>(), 1e-5) << "row " << i;
  }
}

TEST(Sampling, SeededDrawIndependentOfBatch) {
  const int64_t V = 64;
  auto logits = random_logits(8, V, 5, 1.0);
  auto params = sp(1.0, 0, 0.95, 0.0);
  for (uint64_t step = 0; step < 20; ++step) {
    // Row 3 alone, then inside a batch with other rows (other seeds, other params) at another index.
    auto alone = Sampler().sample(logits.slice(0, 3, 4), {RowSpec{params, 42, step}});
    std::vector<RowSpec> rows;
    for (int i = 0; i < 8; ++i) rows.push_back(RowSpec{i == 3 ? params : sp(0.5 + 0.1 * i, i, 1.0, 0.0), i == 3 ? 42u : 1000u + i, step});
    auto together = Sampler().sample(logits, rows);
    EXPECT_EQ(alone.tokens[0], together.tokens[3]) << "step " << step;
    EXPECT_FLOAT_EQ(alone.logprobs[0], together.logprobs[3]);
  }
}

TEST(Sampling, SameSeedSameTokensDifferentSeedDiffers) {
  auto logits = random_logits(1, 100, 9, 0.5).expand({50, 100}).contiguous();
  auto params = sp(1.0, 0, 1.0, 0.0);
  std::vector<RowSpec> a, b, c;
  for (uint64_t s = 0; s < 50; ++s) {
    a.push_back(RowSpec{params, 123, s});
    b.push_back(RowSpec{params, 123, s});
    c.push_back(RowSpec{params, 124, s});
  }
  Sampler sampler;
  auto ra = sampler.sample(logits, a), rb = sampler.sample(logits, b), rc = sampler.sample(logits, c);
  EXPECT_EQ(ra.tokens, rb.tokens);
  EXPECT_NE(ra.tokens, rc.tokens);
}

class SamplingFrequencies : public ::testing::TestWithParam<SamplingParams> {};
INSTANTIATE_TEST_SUITE_P(SortedAndPlainPaths, SamplingFrequencies,
                         ::testing::Values(sp(0.8, 6, 0.9, 0.02), sp(0.8, 0, 1.0, 0.0), sp(1.0, 0, 1.0, 0.0)));

TEST_P(SamplingFrequencies, EmpiricalFrequenciesMatchFilteredDistribution) {
  const int64_t V = 8, N = 40000;
  auto base = random_logits(1, V, 21, 1.0);
  auto params = GetParam();
  Sampler sampler;
  auto expected = row_of(sampler.filtered_probs(base, {RowSpec{params, 0, 0}}), 0);
  std::vector<RowSpec> rows;
  for (int64_t i = 0; i < N; ++i) rows.push_back(RowSpec{params, 77, static_cast<uint64_t>(i)});
  auto res = sampler.sample(base.expand({N, V}).contiguous(), rows);
  std::vector<double> freq(V, 0);
  for (auto t : res.tokens) freq[t] += 1.0 / N;
  for (int64_t v = 0; v < V; ++v) {
    double sd = std::sqrt(expected[v] * (1 - expected[v]) / N);
    EXPECT_NEAR(freq[v], expected[v], 5 * sd + 1e-9) << "token " << v;
    if (expected[v] == 0) EXPECT_EQ(freq[v], 0) << "filtered token " << v << " was drawn";
  }
}

TEST(Sampling, CounterUniformRange) {
  double lo = 1, hi = 0, sum = 0;
  for (uint64_t i = 0; i < 10000; ++i) {
    double u = counter_uniform(5, i);
    lo = std::min(lo, u);
    hi = std::max(hi, u);
    sum += u;
  }
  EXPECT_GE(lo, 0.0);
  EXPECT_LT(hi, 1.0);
  EXPECT_NEAR(sum / 10000, 0.5, 0.02);
  EXPECT_NE(mix_seed(1, 0), mix_seed(1, 1));
  EXPECT_NE(mix_seed(0, 1), mix_seed(1, 0));
}

TEST(Sampling, ValidateRejectsBadParams) {
  EXPECT_THROW(sp(0.0, 0, 1.0, 0).validate(), UsageError);
  EXPECT_THROW(sp(-1.0, 0, 1.0, 0).validate(), UsageError);
  EXPECT_THROW(sp(NAN, 0, 1.0, 0).validate(), UsageError);
  EXPECT_THROW(sp(1.0, -1, 1.0, 0).validate(), UsageError);
  EXPECT_THROW(sp(1.0, 0, 0.0, 0).validate(), UsageError);
  EXPECT_THROW(sp(1.0, 0, 1.5, 0).validate(), UsageError);
  EXPECT_THROW(sp(1.0, 0, 1.0, 1.0).validate(), UsageError);
  EXPECT_THROW(sp(1.0, 0, 1.0, -0.1).validate(), UsageError);
  EXPECT_NO_THROW(sp(1.0, 0, 1.0, 0).validate());
  SamplingParams g = sp(0.0, 0, 1.0, 0);
  g.greedy = true;
  EXPECT_NO_THROW(g.validate());  // temperature is ignored for greedy
}
