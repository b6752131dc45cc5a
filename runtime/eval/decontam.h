// Decontamination as DeepSeekMath did it: a training document is removed when it shares any
// 10-gram with a benchmark question or answer; benchmark texts shorter than 10 words are matched
// exactly (the whole normalized text appears in the document).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace mathrl::eval {

// Lowercased words: runs of ASCII letters/digits, and each non-ASCII letter (CJK characters) on
// its own. Punctuation, LaTeX markup and whitespace separate words.
std::vector<std::string> normalized_words(std::string_view text);

class NgramIndex {
 public:
  explicit NgramIndex(int n = 10) : n_(n) {}
  // Adds a benchmark text under a label ("gsm8k"); empty texts are ignored.
  void add(std::string_view text, const std::string& label);
  // The label of a benchmark text the document overlaps, or "" when it is clean.
  std::string match(std::string_view document) const;
  size_t ngram_count() const { return ngrams_.size(); }
  size_t short_text_count() const { return shorts_.size(); }

 private:
  static uint64_t hash_words(const std::vector<std::string>& words, size_t begin, size_t count);
  int n_;
  std::unordered_map<uint64_t, std::string> ngrams_;          // hash of n words -> label
  std::vector<std::pair<std::string, std::string>> shorts_;   // " w1 w2 ... " -> label
};

}  // namespace mathrl::eval

namespace mathrl::cli {
class Args;
int run_decontam(const Args& args);  // `mathrl decontam`
}  // namespace mathrl::cli
