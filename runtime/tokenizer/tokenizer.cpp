#include "tokenizer/tokenizer.h"

#include <filesystem>

#include "common/error.h"
#include "common/strings.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/sp_tokenizer.h"

namespace mathrl {

namespace fs = std::filesystem;

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  if (path.empty()) throw UsageError("load_tokenizer: empty path");
  fs::path p(path);
  if (!fs::exists(p)) throw UsageError(str("tokenizer '", path, "' does not exist"));
  if (fs::is_directory(p)) {
    if (fs::exists(p / "tokenizer.json")) return load_hf_tokenizer((p / "tokenizer.json").string());
    if (fs::exists(p / "tokenizer.model")) return load_sentencepiece_tokenizer((p / "tokenizer.model").string());
    if (fs::exists(p / "encoder.json") && fs::exists(p / "vocab.bpe"))
      return load_gpt2_tokenizer((p / "encoder.json").string(), (p / "vocab.bpe").string());
    throw UsageError(str("tokenizer directory '", path,
                         "' holds none of tokenizer.json, tokenizer.model, encoder.json + vocab.bpe"));
  }
  std::string file = p.filename().string();
  if ((file == "encoder.json" || file == "vocab.bpe") && fs::exists(p.parent_path() / "encoder.json") &&
      fs::exists(p.parent_path() / "vocab.bpe"))
    return load_gpt2_tokenizer((p.parent_path() / "encoder.json").string(), (p.parent_path() / "vocab.bpe").string());
  std::string ext = p.extension().string();
  if (ext == ".json") return load_hf_tokenizer(path);
  if (ext == ".model") return load_sentencepiece_tokenizer(path);
  throw UsageError(str("tokenizer '", path, "': expected a tokenizer.json, a SentencePiece .model or a directory"));
}

std::string utf8_lossy(std::string_view s) {
  static const char kReplacement[] = "\xEF\xBF\xBD";
  std::string out;
  out.reserve(s.size());
  size_t i = 0, n = s.size();
  while (i < n) {
    unsigned char c = s[i];
    if (c < 0x80) {
      out.push_back(char(c));
      ++i;
      continue;
    }
    // Expected length and the allowed range of the second byte (excludes overlongs, surrogates, > U+10FFFF).
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    if (len == 0) {
      out += kReplacement;
      ++i;
      continue;
    }
    size_t k = 1;
    for (; k < len && i + k < n; ++k) {
      unsigned char cc = s[i + k];
      if (k == 1 ? (cc < lo || cc > hi) : (cc & 0xC0) != 0x80) break;
    }
    if (k == len) out.append(s.substr(i, len));
    else out += kReplacement;  // maximal invalid subpart -> one U+FFFD
    i += k;
  }
  return out;
}

}  // namespace mathrl
