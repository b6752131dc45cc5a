// Shared helpers of the reward_lua tests.
#pragma once
#include <string>
#include <vector>

#include "reward/reward_host.h"
#include "support/test_support.h"

namespace mathrl::reward_lua::testutil {

inline std::vector<Sample> make_samples(size_t n) {
  std::vector<Sample> out;
  for (size_t i = 0; i < n; ++i) {
    Sample s;
    s.prompt = "What is " + std::to_string(i) + " + 1?";
    s.completion = "Adding one gives " + std::to_string(i + 1) + ". \\boxed{" + std::to_string(i + 1) + "}";
    s.reference = std::to_string(i + 1);
    for (size_t t = 0; t < 3 + i % 5; ++t) s.completion_ids.push_back(static_cast<int64_t>(100 + t));
    s.prompt_ids = {1, 2, 3};
    s.record = parse_record("{\"level\": " + std::to_string(i % 3) + ", \"tags\": [\"a\", \"b\"], \"meta\": {\"src\": \"gsm8k\"}}");
    out.push_back(std::move(s));
  }
  return out;
}

inline RewardSpec inline_reward(const std::string& name, const std::string& code, double weight = 1.0,
                                double on_error = 0.0) {
  RewardSpec s;
  s.name = name;
  s.code = code;
  s.weight = weight;
  s.on_error = on_error;
  return s;
}

inline RewardHostOptions small_options(size_t threads = 2) {
  RewardHostOptions o;
  o.threads = threads;
  o.limits.instruction_budget = 2'000'000;
  o.limits.memory_cap = 8u << 20;
  o.limits.seed = 1234;
  o.module_dirs = {test::source_dir() + "/recipes/lib"};
  return o;
}

}  // namespace mathrl::reward_lua::testutil
