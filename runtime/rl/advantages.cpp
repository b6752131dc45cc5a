#include "rl/advantages.h"

#include <cmath>
#include <numeric>

#include "common/error.h"
#include "common/strings.h"

namespace mathrl::rl {

namespace {

double mean_of(const std::vector<double>& v) {
  return v.empty() ? 0.0 : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

// Unbiased standard deviation (n - 1); 0 for fewer than two values.
double std_of(const std::vector<double>& v) {
  if (v.size() < 2) return 0.0;
  double m = mean_of(v), s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

void check_finite(const std::vector<double>& v, const char* what) {
  for (double x : v)
    if (!std::isfinite(x)) throw UsageError(str(what, ": rewards must be finite numbers"));
}

}  // namespace

std::vector<double> grpo_advantages(const std::vector<double>& rewards, const GroupAdvantageOptions& options) {
  check_finite(rewards, "grpo advantages");
  double m = mean_of(rewards), s = options.scale ? std_of(rewards) + options.epsilon : 1.0;
  std::vector<double> out;
  for (double r : rewards) out.push_back((r - m) / s);
  return out;
}

std::vector<double> rloo_advantages(const std::vector<double>& rewards) {
  check_finite(rewards, "rloo advantages");
  if (rewards.size() < 2) throw UsageError("rloo advantages need at least 2 completions per prompt");
  double total = std::accumulate(rewards.begin(), rewards.end(), 0.0);
  double others = static_cast<double>(rewards.size() - 1);
  std::vector<double> out;
  for (double r : rewards) out.push_back(r - (total - r) / others);
  return out;
}

std::vector<std::vector<double>> reinforce_pp_baseline_advantages(const std::vector<std::vector<double>>& groups,
                                                                  double epsilon) {
  std::vector<std::vector<double>> centred;
  std::vector<double> all;
  for (const auto& g : groups) {
    check_finite(g, "reinforce++ advantages");
    double m = mean_of(g);
    std::vector<double> c;
    for (double r : g) c.push_back(r - m), all.push_back(r - m);
    centred.push_back(std::move(c));
  }
  double s = std_of(all) + epsilon;
  for (auto& g : centred)
    for (double& a : g) a /= s;
  return centred;
}

std::vector<std::vector<double>> process_supervision_advantages(const std::vector<std::vector<double>>& step_rewards,
                                                                const std::vector<std::vector<int>>& step_end,
                                                                const std::vector<int>& lengths, double epsilon) {
  if (step_rewards.size() != step_end.size() || step_rewards.size() != lengths.size())
    throw UsageError("process supervision: step rewards, step ends and lengths must have one entry per completion");
  std::vector<double> all;
  for (size_t i = 0; i < step_rewards.size(); ++i) {
    if (step_rewards[i].size() != step_end[i].size())
      throw UsageError(str("process supervision: completion ", i, " has ", step_rewards[i].size(), " step rewards but ",
                           step_end[i].size(), " step ends"));
    check_finite(step_rewards[i], "process supervision");
    for (size_t j = 0; j < step_end[i].size(); ++j) {
      int end = step_end[i][j];
      if (end < 1 || end > lengths[i] || (j > 0 && end <= step_end[i][j - 1]))
        throw UsageError(str("process supervision: completion ", i, " step ", j, " ends at token ", end,
                             "; step ends must increase within 1..", lengths[i]));
    }
    all.insert(all.end(), step_rewards[i].begin(), step_rewards[i].end());
  }
  double m = mean_of(all), s = std_of(all) + epsilon;
  std::vector<std::vector<double>> out;
  for (size_t i = 0; i < step_rewards.size(); ++i) {
    std::vector<double> adv(static_cast<size_t>(lengths[i]), 0.0);
    // Walk steps backwards, accumulating the normalized rewards of this and later steps.
    double suffix = 0;
    for (size_t j = step_end[i].size(); j-- > 0;) {
      suffix += (step_rewards[i][j] - m) / s;
      int start = j == 0 ? 0 : step_end[i][j - 1];
      for (int t = start; t < step_end[i][j]; ++t) adv[static_cast<size_t>(t)] = suffix;
    }
    // Tokens after the last step (if any) have no later step reward: advantage 0.
    out.push_back(std::move(adv));
  }
  return out;
}

Gae gae(const std::vector<double>& rewards, const std::vector<double>& values, double gamma, double lambda) {
  if (rewards.size() != values.size())
    throw UsageError(str("gae: ", rewards.size(), " rewards but ", values.size(), " values (one per token expected)"));
  if (!(gamma >= 0 && gamma <= 1) || !(lambda >= 0 && lambda <= 1))
    throw UsageError(str("gae: gamma and lambda must lie in [0, 1] (got ", gamma, ", ", lambda, ")"));
  check_finite(rewards, "gae");
  check_finite(values, "gae");
  Gae out;
  out.advantages.assign(rewards.size(), 0.0);
  out.returns.assign(rewards.size(), 0.0);
  double next_value = 0, next_adv = 0;
  for (size_t t = rewards.size(); t-- > 0;) {
    double delta = rewards[t] + gamma * next_value - values[t];
    next_adv = delta + gamma * lambda * next_adv;
    next_value = values[t];
    out.advantages[t] = next_adv;
    out.returns[t] = next_adv + values[t];
  }
  return out;
}

std::vector<std::string> advantage_names() { return {"grpo", "rloo", "reinforce++", "process"}; }

}  // namespace mathrl::rl
