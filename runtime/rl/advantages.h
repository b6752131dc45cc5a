// Advantage estimators for group-based RL (GRPO and relatives). A group is the G completions of
// one prompt. Outcome supervision gives one reward per completion; process supervision gives one
// reward per reasoning step. All are plain functions of the group, so recipes can wrap them.
#pragma once
#include <string>
#include <vector>

namespace mathrl::rl {

struct GroupAdvantageOptions {
  bool scale = true;      // divide by the group's standard deviation (TRL's scale_rewards)
  double epsilon = 1e-4;  // added to the standard deviation
};

// GRPO (outcome supervision): (r_i - mean(r)) / (std(r) + eps), with the unbiased (n-1) standard
// deviation as TRL computes it; without scaling, r_i - mean(r).
std::vector<double> grpo_advantages(const std::vector<double>& rewards, const GroupAdvantageOptions& options = {});

// RLOO: r_i - mean of the other G-1 rewards. Needs G >= 2.
std::vector<double> rloo_advantages(const std::vector<double>& rewards);

// REINFORCE++ with a group baseline: r_i - mean(group), then divided by the standard deviation of
// these centred values over the whole batch (all groups). Input: one reward vector per group.
std::vector<std::vector<double>> reinforce_pp_baseline_advantages(const std::vector<std::vector<double>>& groups,
                                                                  double epsilon = 1e-4);

// Process supervision (DeepSeekMath section 4.1.3). For completion i, step j ends at token
// step_end[i][j] (exclusive index into the completion) with reward step_rewards[i][j]. Every step
// reward of the group is normalized by the mean and standard deviation of all step rewards in the
// group; a token's advantage is the sum of the normalized rewards of the steps ending at or after it.
// Returns per-token advantages for each completion (length `lengths[i]`).
std::vector<std::vector<double>> process_supervision_advantages(const std::vector<std::vector<double>>& step_rewards,
                                                                const std::vector<std::vector<int>>& step_end,
                                                                const std::vector<int>& lengths, double epsilon = 1e-4);

// Generalized advantage estimation (PPO with a learned critic). Per token t of one completion:
//   delta_t = r_t + gamma * V_{t+1} - V_t   (V past the last token is 0: the episode ends there)
//   A_t     = delta_t + gamma * lambda * A_{t+1}
// and the value targets (returns) R_t = A_t + V_t. `rewards` and `values` have one entry per token.
struct Gae {
  std::vector<double> advantages, returns;
};
Gae gae(const std::vector<double>& rewards, const std::vector<double>& values, double gamma, double lambda);

// Names of the built-ins ("grpo", "rloo", "reinforce++", "process") for recipes and errors.
std::vector<std::string> advantage_names();

}  // namespace mathrl::rl
