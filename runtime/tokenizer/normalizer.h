// Normalizers of tokenizer.json (NFC/NFD/NFKC/NFKD through utf8proc, Lowercase), applied in order.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace mathrl {

enum class NormKind { NFC, NFD, NFKC, NFKD, Lowercase };

struct Normalizer {
  std::vector<NormKind> steps;

  // Returns false when the text is unchanged (then `out` is untouched).
  bool apply(std::string_view in, std::string& out) const;
  static bool apply_one(NormKind k, std::string_view in, std::string& out);
};

}  // namespace mathrl
