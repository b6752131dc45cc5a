// The RL stage's prompts: JSONL files (or records written in the recipe) mapped by the recipe's
// `prompt = function(ex) return {prompt = ..., answer = ...} end`, tokenized once, then drawn as
// an endless stream: epoch e visits every prompt once in an order shuffled by (seed, e). The
// stream position (cursor) is all a resume needs.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <rapidjson/document.h>

#include "recipe.h"

namespace mathrl {
class Tokenizer;
}

namespace mathrl::lua {

struct RlPrompt {
  std::string text;                 // the prompt text (ids joined by spaces without a tokenizer)
  std::vector<int32_t> ids;
  std::string answer;               // becomes the reward sample's reference
  std::shared_ptr<const rapidjson::Document> record;  // the JSONL line, null for inline records
};

// Reads `data` (a path or a list of paths, each taken as given when it exists, else relative to
// the recipe's directory; or a list of record tables) and maps each record through the recipe's `prompt` function. Records for which it
// returns nil are skipped. `max_prompts` > 0 keeps the first that many. `bos` >= 0 is prepended
// to tokenized text prompts.
std::vector<RlPrompt> load_rl_prompts(const Recipe& recipe, const Tokenizer* tokenizer, int32_t bos, int64_t max_prompts);

class PromptStream {
 public:
  PromptStream(size_t size, uint64_t seed, bool shuffle);
  // Index of the prompt at stream position `cursor`.
  size_t at(uint64_t cursor);

 private:
  size_t size_;
  uint64_t seed_;
  bool shuffle_;
  uint64_t epoch_ = UINT64_MAX;
  std::vector<size_t> order_;
};


}  // namespace mathrl::lua
