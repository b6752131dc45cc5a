// PCRE2 (UTF + UCP, JIT) wrapper for pre-tokenizer patterns written for Oniguruma, which the
// `tokenizers` library uses. The one semantic gap we patch: Oniguruma's \s includes U+0085.
#pragma once
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mathrl {

class Regex {
 public:
  // literal: match `pattern` as a plain string. Throws UsageError naming `where` on a bad pattern.
  Regex(const std::string& pattern, bool literal, const std::string& where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Appends the non-overlapping matches in `text` (valid UTF-8) as [begin, end) byte offsets.
  void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;

 private:
  void* code_ = nullptr;  // pcre2_code_8*
  bool jit_ = false;
};

// Rewrites \s / \S so that PCRE2 agrees with Oniguruma on U+0085 (exposed for tests).
std::string oniguruma_compatible_pattern(const std::string& pattern);

}  // namespace mathrl
