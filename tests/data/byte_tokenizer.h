// A stand-in tokenizer for the data tests: token = byte + 3 (0 pad, 1 BOS, 2 EOS), so expected
// token ids are easy to compute in the test and no tokenizer file is loaded.
#pragma once
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace mathrl::test {

class ByteTokenizer : public Tokenizer {
 public:
  explicit ByteTokenizer(bool with_bos = true) {
    bos_id_ = with_bos ? 1 : -1;
    eos_id_ = 2;
    pad_id_ = 0;
    kind_ = "bytes";
  }
  std::vector<int32_t> encode(std::string_view text, bool add_special = false) const override {
    std::vector<int32_t> out;
    encode_into(text, add_special, out);
    return out;
  }
  void encode_into(std::string_view text, bool add_special, std::vector<int32_t>& out) const override {
    if (add_special && bos_id_ >= 0) out.push_back(bos_id_);
    for (unsigned char c : text) out.push_back(static_cast<int32_t>(c) + 3);
  }
  std::string decode(const std::vector<int32_t>& ids, bool) const override {
    std::string s;
    for (int32_t id : ids)
      if (id >= 3) s += static_cast<char>(id - 3);
    return s;
  }
  size_t vocab_size() const override { return 259; }
  std::string id_to_token(int32_t id) const override { return id >= 3 && id < 259 ? std::string(1, char(id - 3)) : ""; }
  int32_t token_to_id(std::string_view t) const override { return t.size() == 1 ? (unsigned char)t[0] + 3 : -1; }
  bool is_special(int32_t id) const override { return id < 3; }
  std::vector<int32_t> special_ids() const override { return {0, 1, 2}; }
};

// Tokens of `text` as a BOS-led document.
inline std::vector<int32_t> bytes_doc(const std::string& text, bool bos = true) {
  std::vector<int32_t> out;
  if (bos) out.push_back(1);
  for (unsigned char c : text) out.push_back(static_cast<int32_t>(c) + 3);
  return out;
}

}  // namespace mathrl::test
