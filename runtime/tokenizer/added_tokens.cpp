#include "tokenizer/added_tokens.h"

#include <algorithm>

#include <utf8proc.h>

namespace mathrl {

void TokenMatcher::add(std::string_view pattern, int index) {
  if (pattern.empty()) return;
  int node = 0;
  for (unsigned char c : pattern) {
    auto& kids = nodes_[node].children;
    auto it = std::find_if(kids.begin(), kids.end(), [&](auto& p) { return p.first == c; });
    if (it == kids.end()) {
      nodes_.push_back({});
      int id = int(nodes_.size()) - 1;
      nodes_[node].children.emplace_back(c, id);
      node = id;
    } else {
      node = it->second;
    }
  }
  nodes_[node].index = index;
  first_[static_cast<unsigned char>(pattern[0])] = true;
  empty_ = false;
}

bool TokenMatcher::find(std::string_view text, size_t from, size_t& begin, size_t& end, int& index) const {
  for (size_t pos = from; pos < text.size(); ++pos) {
    if (!first_[static_cast<unsigned char>(text[pos])]) continue;
    int node = 0, best = -1;
    size_t best_end = 0;
    for (size_t k = pos; k < text.size(); ++k) {
      unsigned char c = text[k];
      const auto& kids = nodes_[node].children;
      auto it = std::find_if(kids.begin(), kids.end(), [&](auto& p) { return p.first == c; });
      if (it == kids.end()) break;
      node = it->second;
      if (nodes_[node].index >= 0) best = nodes_[node].index, best_end = k + 1;
    }
    if (best >= 0) {
      begin = pos, end = best_end, index = best;
      return true;
    }
  }
  return false;
}

namespace {

// The boundary checks of added tokens use Rust regex's \w and \s (Unicode).
bool is_word_cp(utf8proc_int32_t cp) {
  if (cp == 0x200C || cp == 0x200D) return true;  // Join_Control
  switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT: case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return false;
  }
}
bool is_space_cp(utf8proc_int32_t cp) {
  return (cp >= 9 && cp <= 13) || cp == 32 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
         cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}
// The code point starting at byte i of s, and its length.
utf8proc_int32_t cp_at(std::string_view s, size_t i, size_t& len) {
  utf8proc_int32_t cp = -1;
  auto n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i), s.size() - i, &cp);
  len = n > 0 ? size_t(n) : 1;
  return cp;
}
size_t cp_start_before(std::string_view s, size_t i) {  // start of the code point ending at byte i
  do --i;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80);
  return i;
}
}  // namespace

bool word_char_before(std::string_view s, size_t i) {
  if (i == 0) return false;
  size_t len;
  return is_word_cp(cp_at(s, cp_start_before(s, i), len));
}
bool word_char_at(std::string_view s, size_t i) {
  size_t len;
  return i < s.size() && is_word_cp(cp_at(s, i, len));
}

size_t skip_spaces_left(std::string_view s, size_t i) {
  size_t len;
  while (i > 0 && is_space_cp(cp_at(s, cp_start_before(s, i), len))) i = cp_start_before(s, i);
  return i;
}

size_t skip_spaces_right(std::string_view s, size_t i) {
  size_t len;
  while (i < s.size() && is_space_cp(cp_at(s, i, len))) i += len;
  return i;
}

}  // namespace mathrl
