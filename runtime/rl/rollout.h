// Rollouts: a batch of prompts -> the rollout engine (one request per prompt, n = num_generations,
// a seed per prompt) -> groups of completions with the sampler's log-probs and truncation flags.
//
// A prompt's seed is derived from the run seed and the prompt's position in the prompt stream (and
// the dynamic-sampling attempt), never from its place in the batch or the rank that draws it, so a
// resumed or resharded run samples the same completions.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "sampler/engine.h"

namespace mathrl::rl {

struct RolloutOptions {
  int num_generations = 8;            // G: completions per prompt
  int max_completion_length = 256;
  sampler::SamplingParams sampling;   // temperature, top_k, top_p, min_p
  std::vector<std::string> stop;      // stop strings (need the engine's tokenizer)
  bool ignore_eos = false;
};

struct RolloutPrompt {
  std::vector<int32_t> ids;
  uint64_t seed = 0;                  // see prompt_seed()
};

struct RolloutGroup {
  std::vector<sampler::Completion> completions;  // G of them, ordered by sample index
};

// seed of the prompt at stream position `cursor`, dynamic-sampling attempt `attempt` (0 first).
uint64_t prompt_seed(uint64_t run_seed, uint64_t cursor, uint64_t attempt = 0);

// One group per prompt, in prompt order. A completion is truncated when finish_reason == "length".
std::vector<RolloutGroup> generate_groups(sampler::Engine& engine, const std::vector<RolloutPrompt>& prompts,
                                          const RolloutOptions& options);

inline bool is_truncated(const sampler::Completion& c) { return c.finish_reason == "length"; }

}  // namespace mathrl::rl
