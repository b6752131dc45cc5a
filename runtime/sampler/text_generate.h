// Text in, text out: the shape eval::GenerateFn has (n completions per prompt, in order), for the
// evaluation and RL stages that work on strings.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "sampler/engine.h"

namespace mathrl::sampler {

struct TextGenerateOptions {
  SamplingParams params;     // greedy for n = 1 evaluations
  int max_new_tokens = 512;
  std::vector<std::string> stop;
  uint64_t seed = 0;         // prompt i of call c uses mix_seed(mix_seed(seed, c), i)
  bool add_special = true;   // encode prompts with the tokenizer's post-processor (BOS)
};

using TextGenerateFn = std::function<std::vector<std::vector<std::string>>(const std::vector<std::string>&, int)>;

// `engine` must have been built with a tokenizer; both must outlive the returned function.
TextGenerateFn make_text_generator(Engine& engine, const Tokenizer& tokenizer, TextGenerateOptions options);

}  // namespace mathrl::sampler
