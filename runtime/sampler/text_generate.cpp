#include "sampler/text_generate.h"

#include <memory>

#include "common/error.h"
#include "tokenizer/tokenizer.h"

namespace mathrl::sampler {

TextGenerateFn make_text_generator(Engine& engine, const Tokenizer& tokenizer, TextGenerateOptions options) {
  auto calls = std::make_shared<uint64_t>(0);
  return [&engine, &tokenizer, options, calls](const std::vector<std::string>& prompts, int n) {
    const uint64_t call_seed = mix_seed(options.seed, (*calls)++);
    std::vector<Request> requests(prompts.size());
    for (size_t i = 0; i < prompts.size(); ++i) {
      Request& r = requests[i];
      r.prompt_ids = tokenizer.encode(prompts[i], options.add_special);
      r.n = n;
      r.params = options.params;
      r.seed = mix_seed(call_seed, i);
      r.max_new_tokens = options.max_new_tokens;
      r.stop = options.stop;
    }
    auto done = engine.generate(requests);
    std::vector<std::vector<std::string>> out(prompts.size());
    for (auto& c : done) out[c.request].push_back(std::move(c.text));
    return out;
  };
}

}  // namespace mathrl::sampler
