// What the update step trains on: one completion of a prompt with everything the objective needs.
// Groups (the G completions of one prompt) are consecutive runs of `group` values; a data-parallel
// run gives each rank whole groups (see shard_groups).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mathrl::rl {

struct TrainSequence {
  std::vector<int32_t> prompt_ids;
  std::vector<int32_t> completion_ids;     // non-empty
  std::vector<float> sampler_logprobs;     // from the rollout engine, one per completion id (may be empty)
  std::vector<double> advantages;          // one per completion token, or a single sequence-level value
  bool truncated = false;                  // stopped by max_completion_length
  int64_t group = 0;                       // index of its prompt in the rollout batch
  // PPO with a critic: value targets and the values at sampling time, one per completion token.
  std::vector<double> returns;
  std::vector<float> old_values;
};

// Token lengths of prompt + completion.
inline int64_t sequence_length(const TrainSequence& s) {
  return static_cast<int64_t>(s.prompt_ids.size() + s.completion_ids.size());
}

// Splits sequence indices [0, n) into micro-batches in order, each holding at most `token_budget`
// padded tokens (count x longest); a sequence longer than the budget gets a micro-batch alone.
std::vector<std::vector<size_t>> plan_microbatches(const std::vector<TrainSequence>& seqs, int64_t token_budget);

// Groups [begin, end) of `num_groups` that rank `rank` of `world` takes: contiguous, sizes differing
// by at most one, so each group of G completions stays whole on one rank.
std::pair<int64_t, int64_t> shard_groups(int64_t num_groups, int rank, int world);

}  // namespace mathrl::rl
