#include "rl/rollout.h"

#include "common/error.h"

namespace mathrl::rl {

uint64_t prompt_seed(uint64_t run_seed, uint64_t cursor, uint64_t attempt) {
  return sampler::mix_seed(sampler::mix_seed(run_seed ^ 0x5eed0f9a11ull, cursor), attempt);
}

std::vector<RolloutGroup> generate_groups(sampler::Engine& engine, const std::vector<RolloutPrompt>& prompts,
                                          const RolloutOptions& o) {
  if (o.num_generations < 1) throw UsageError(str("num_generations must be >= 1 (got ", o.num_generations, ")"));
  if (o.max_completion_length < 1)
    throw UsageError(str("max_completion_length must be >= 1 (got ", o.max_completion_length, ")"));
  std::vector<sampler::Request> requests;
  for (const auto& p : prompts) {
    sampler::Request r;
    r.prompt_ids = p.ids;
    r.n = o.num_generations;
    r.params = o.sampling;
    r.seed = p.seed;
    r.max_new_tokens = o.max_completion_length;
    r.stop = o.stop;
    r.ignore_eos = o.ignore_eos;
    requests.push_back(std::move(r));
  }
  std::vector<sampler::Completion> done = engine.generate(requests);
  std::vector<RolloutGroup> groups(prompts.size());
  for (auto& c : done) groups.at(c.request).completions.push_back(std::move(c));
  for (size_t i = 0; i < groups.size(); ++i) {
    MATHRL_CHECK(static_cast<int>(groups[i].completions.size()) == o.num_generations, "prompt ", i, " got ",
                 groups[i].completions.size(), " completions, expected ", o.num_generations);
  }
  return groups;
}

}  // namespace mathrl::rl
