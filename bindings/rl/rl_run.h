// Internals of the rl stage shared by its files: the run's objects and one training step.
#pragma once
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/transformer.h"
#include "recipe.h"
#include "reward/reward_host.h"
#include "rl/rl_prompts.h"
#include "rl/rollout.h"
#include "rl/update.h"
#include "sampler/model_backend.h"
#include "tokenizer/tokenizer.h"
#include "train/optimizer.h"

namespace mathrl::dist {
class DataParallel;
class FullyShardedDecoder;
class ProcessGroup;
class ShardedAdamW;
}  // namespace mathrl::dist

namespace mathrl::lua {

struct RlSettings {
  std::string algorithm;            // "grpo" | "ppo"
  std::string advantage;            // built-in name, or "" when the recipe gives a function
  std::string old_logprobs = "auto";  // auto | recompute | sampler
  bool scale_rewards = true;
  bool step_rewards = false;        // the recipe has a step_rewards function (process supervision)
  int64_t prompts_per_step = 16;
  int num_iterations = 1;
  bool dynamic_sampling = false;
  int max_resample = 3;
  double gamma = 1.0, lam = 0.95, cliprange_value = 0.2;
  rl::RolloutOptions rollout;
  rl::UpdateOptions update;
  uint64_t seed = 1;
  std::string critic_lr_field = "learning_rate";  // "critic_learning_rate" when the recipe sets it
};

struct RlState {
  model::Decoder policy{nullptr}, ref{nullptr}, critic{nullptr};
  // The policy's optimizer: an AdamW, or with zero_stage 1/2 over several ranks a ShardedAdamW
  // (optimizer state, and for stage 2 gradients, sharded; it sums the gradients in its step).
  std::unique_ptr<train::AdamW> optimizer, critic_optimizer;
  std::unique_ptr<dist::ShardedAdamW> zero_optimizer;
  void policy_zero_grad();
  train::StepResult policy_step(double lr, double loss);
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<sampler::ModelBackend> backend;
  std::unique_ptr<sampler::Engine> engine;
  std::unique_ptr<reward_lua::RewardHost> rewards;
  std::vector<RlPrompt> prompts;
  std::unique_ptr<PromptStream> stream;
  uint64_t cursor = 0;              // prompts drawn so far (the resume point)
  // Data parallelism: every rank draws the same prompts, rolls out and trains on its contiguous
  // slice of each step's groups, and the policy's gradients are summed across ranks (null: one process).
  std::shared_ptr<dist::ProcessGroup> group;
  std::unique_ptr<dist::DataParallel> data_parallel, critic_data_parallel;
  // shard_reference over several ranks: rank r keeps 1/N of the frozen reference model and every
  // scoring forward gathers it a layer at a time (collective: all ranks run the same passes).
  std::unique_ptr<dist::FullyShardedDecoder> ref_shards;
  ~RlState();
};

// One step (rollout, rewards, advantages, mu updates); returns the step's metrics.
std::map<std::string, double> rl_step(RunContext& ctx, const RlSettings& s, RlState& st, long long step);

}  // namespace mathrl::lua
