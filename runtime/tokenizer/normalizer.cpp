#include "tokenizer/normalizer.h"

#include <algorithm>
#include <cstdlib>

#include <utf8proc.h>

#include "common/error.h"

namespace mathrl {

bool Normalizer::apply(std::string_view in, std::string& out) const {
  bool changed = false;
  std::string cur;
  std::string_view text = in;
  for (NormKind k : steps) {
    std::string next;
    if (!apply_one(k, text, next)) continue;
    cur = std::move(next);
    text = cur;
    changed = true;
  }
  if (changed) out = std::move(cur);
  return changed;
}

bool Normalizer::apply_one(NormKind k, std::string_view in, std::string& out) {
  if (k == NormKind::Lowercase) {
    bool changed = false;
    auto p = reinterpret_cast<const utf8proc_uint8_t*>(in.data());
    utf8proc_ssize_t left = in.size();
    out.clear();
    while (left > 0) {
      utf8proc_int32_t cp;
      auto n = utf8proc_iterate(p, left, &cp);
      if (n <= 0) return false;
      utf8proc_int32_t lower = utf8proc_tolower(cp);
      changed |= lower != cp;
      utf8proc_uint8_t buf[4];
      out.append(reinterpret_cast<char*>(buf), utf8proc_encode_char(lower, buf));
      p += n;
      left -= n;
    }
    return changed;
  }
  // Fast path: ASCII is stable under every form; for NFC so is anything below U+0300 (lead
  // byte < 0xCC), since composition needs a combining mark.
  bool compat = k == NormKind::NFKC || k == NormKind::NFKD;
  unsigned char limit = k == NormKind::NFC ? 0xCC : 0x80;
  if (std::all_of(in.begin(), in.end(), [&](char c) { return static_cast<unsigned char>(c) < limit; }))
    return false;
  int options = UTF8PROC_STABLE;
  options |= (k == NormKind::NFC || k == NormKind::NFKC) ? UTF8PROC_COMPOSE : UTF8PROC_DECOMPOSE;
  if (compat) options |= UTF8PROC_COMPAT;
  utf8proc_uint8_t* result = nullptr;
  auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(in.data()), in.size(), &result,
                        static_cast<utf8proc_option_t>(options));
  if (n < 0) throw DataError(str("normalizer: ", utf8proc_errmsg(n)));
  out.assign(reinterpret_cast<char*>(result), n);
  std::free(result);
  return out != in;
}

}  // namespace mathrl
