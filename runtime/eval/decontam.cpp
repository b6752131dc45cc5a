#include "eval/decontam.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <map>

#include "cli/options.h"
#include "common/error.h"
#include "common/jsonl.h"
#include "common/strings.h"
#include "eval/benchmarks.h"

namespace mathrl::eval {

std::vector<std::string> normalized_words(std::string_view text) {
  std::vector<std::string> words;
  std::string current;
  auto flush = [&] {
    if (!current.empty()) words.push_back(std::move(current)), current.clear();
  };
  for (size_t i = 0; i < text.size();) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      if (std::isalnum(c)) current.push_back(static_cast<char>(std::tolower(c)));
      else flush();
      ++i;
      continue;
    }
    // A multi-byte character is a word of its own (CJK text has no spaces).
    size_t len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    flush();
    words.emplace_back(text.substr(i, std::min(len, text.size() - i)));
    i += len;
  }
  flush();
  return words;
}

uint64_t NgramIndex::hash_words(const std::vector<std::string>& words, size_t begin, size_t count) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a over the words with a separator
  for (size_t i = begin; i < begin + count; ++i) {
    for (unsigned char c : words[i]) h = (h ^ c) * 1099511628211ull;
    h = (h ^ 0x1F) * 1099511628211ull;
  }
  return h;
}

void NgramIndex::add(std::string_view text, const std::string& label) {
  std::vector<std::string> words = normalized_words(text);
  if (words.empty()) return;
  if (words.size() < static_cast<size_t>(n_)) {
    std::string joined = " ";
    for (const auto& w : words) joined += w + " ";
    shorts_.emplace_back(std::move(joined), label);
    return;
  }
  for (size_t i = 0; i + n_ <= words.size(); ++i) ngrams_.emplace(hash_words(words, i, n_), label);
}

std::string NgramIndex::match(std::string_view document) const {
  std::vector<std::string> words = normalized_words(document);
  for (size_t i = 0; i + n_ <= words.size(); ++i) {
    auto it = ngrams_.find(hash_words(words, i, n_));
    if (it != ngrams_.end()) return it->second;
  }
  if (!shorts_.empty()) {
    std::string joined = " ";
    for (const auto& w : words) joined += w + " ";
    for (const auto& [text, label] : shorts_)
      if (joined.find(text) != std::string::npos) return label;
  }
  return "";
}

}  // namespace mathrl::eval

namespace mathrl::cli {

int run_decontam(const Args& args) {
  const std::string data_dir = args.str("data-dir");
  const std::string field = args.str("field");
  eval::NgramIndex index(static_cast<int>(args.integer("ngram")));
  if (args.integer("ngram") < 1) throw UsageError("--ngram must be at least 1");
  for (const auto& name : split(args.str("bench"), ',')) {
    if (trim(name).empty()) continue;
    for (const auto& p : eval::load_benchmark(std::string(trim(name)), data_dir)) {
      index.add(p.question, std::string(trim(name)));
      index.add(p.gold, std::string(trim(name)));
      if (!p.solution.empty()) index.add(p.solution, std::string(trim(name)));
    }
  }
  const std::string input = args.positional().empty() ? "-" : args.positional()[0];
  LineReader reader(input);
  FILE* out = stdout;
  if (args.has("out")) {
    out = std::fopen(args.str("out").c_str(), "w");
    if (!out) throw Error(str(args.str("out"), ": cannot create"));
  }
  FILE* removed = nullptr;
  if (args.has("removed")) {
    removed = std::fopen(args.str("removed").c_str(), "w");
    if (!removed) throw Error(str(args.str("removed"), ": cannot create"));
  }
  std::map<std::string, long long> by_benchmark;
  long long kept = 0, dropped = 0;
  std::string line;
  while (reader.next(line)) {
    std::string where = str(reader.name(), ":", reader.line_number());
    std::string text = line;
    if (!args.flag("raw")) {
      rapidjson::Document doc = parse_json(line, where);
      auto it = doc.IsObject() ? doc.FindMember(field.c_str()) : doc.MemberEnd();
      if (!doc.IsObject() || it == doc.MemberEnd() || !it->value.IsString())
        throw DataError(str(where, ": expected an object with a string field '", field, "'"));
      text.assign(it->value.GetString(), it->value.GetStringLength());
    }
    std::string hit = index.match(text);
    if (hit.empty()) {
      ++kept;
      std::fputs(line.c_str(), out);
      std::fputc('\n', out);
    } else {
      ++dropped;
      ++by_benchmark[hit];
      if (removed) std::fprintf(removed, "{\"line\":%zu,\"benchmark\":\"%s\"}\n", reader.line_number(), hit.c_str());
    }
  }
  if (out != stdout) std::fclose(out);
  if (removed) std::fclose(removed);
  std::fprintf(stderr, "decontam: kept %lld, removed %lld", kept, dropped);
  for (const auto& [name, count] : by_benchmark) std::fprintf(stderr, " (%s: %lld)", name.c_str(), count);
  std::fprintf(stderr, "\n");
  return 0;
}

}  // namespace mathrl::cli
