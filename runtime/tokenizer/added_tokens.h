// Added tokens of tokenizer.json: matched in the text before pre-tokenization (leftmost-longest),
// with the lstrip/rstrip/single_word boundary rules of `tokenizers`.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mathrl {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false, lstrip = false, rstrip = false, single_word = false, normalized = false;
};

// Leftmost-longest matching over a set of strings (what `tokenizers` does with Aho-Corasick).
class TokenMatcher {
 public:
  void add(std::string_view pattern, int index);
  bool empty() const { return empty_; }
  // Next match at or after `from`: sets begin/end/index; false when none.
  bool find(std::string_view text, size_t from, size_t& begin, size_t& end, int& index) const;

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int>> children;
    int index = -1;
  };
  std::vector<Node> nodes_ = {Node{}};
  bool first_[256] = {};
  bool empty_ = true;
};

// Boundary checks (Rust regex \w and \s, Unicode), byte offsets into valid UTF-8.
bool word_char_before(std::string_view s, size_t i);  // the character ending at i is a word char
bool word_char_at(std::string_view s, size_t i);      // the character starting at i is a word char
size_t skip_spaces_left(std::string_view s, size_t i);   // start of the whitespace run ending at i
size_t skip_spaces_right(std::string_view s, size_t i);  // end of the whitespace run starting at i

}  // namespace mathrl
