#include "data/text_source.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string_view>

#include "common/error.h"
#include "common/strings.h"

namespace mathrl::data {
namespace fs = std::filesystem;

TextSource::TextSource(const std::string& path, bool per_line, const Tokenizer& tokenizer, bool add_bos)
    : tokenizer_(tokenizer), add_bos_(add_bos) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec))
      if (it->is_regular_file(ec)) files_.push_back(it->path().string());
    if (ec) throw DataError(str(path, ": cannot list text source: ", ec.message()));
    std::sort(files_.begin(), files_.end());
    if (files_.empty()) throw DataError(str(path, ": text source directory holds no files"));
  } else if (fs::is_regular_file(path, ec)) {
    files_.push_back(path);
  } else {
    throw DataError(str(path, ": text source not found"));
  }
  for (uint32_t f = 0; f < files_.size(); ++f) {
    if (!per_line) {
      records_.push_back({f, 0, 0, 0});
      continue;
    }
    const std::string text = read_file(files_[f]);
    size_t start = 0;
    uint32_t line = 1;
    while (start < text.size()) {
      size_t end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      size_t len = end - start;
      if (len > 0 && text[start + len - 1] == '\r') --len;
      if (!trim(std::string_view(text).substr(start, len)).empty()) records_.push_back({f, line, start, len});
      start = end + 1;
      ++line;
    }
  }
}

std::string TextSource::locate(size_t i) const {
  const Record& r = records_.at(i);
  return r.line ? str(files_[r.file], ":", r.line) : files_[r.file];
}

std::string TextSource::read(size_t i, Document& out) {
  MATHRL_CHECK(i < records_.size(), "text record ", i, " out of range ", records_.size());
  const Record& r = records_[i];
  std::string text;
  if (r.line == 0) {
    text = read_file(files_[r.file]);
  } else {
    FILE* f = std::fopen(files_[r.file].c_str(), "rb");
    if (!f) throw DataError(str(files_[r.file], ": cannot open: ", std::strerror(errno)));
    text.resize(r.length);
    const bool ok = std::fseek(f, static_cast<long>(r.offset), SEEK_SET) == 0 &&
                    std::fread(text.data(), 1, r.length, f) == r.length;
    std::fclose(f);
    if (!ok) throw DataError(str(locate(i), ": cannot read (did the file change?)"));
  }
  if (!is_valid_utf8(text)) return "invalid UTF-8";
  encode_mapped(tokenizer_, add_bos_, Mapped::whole(std::move(text)), out);
  return "";
}

}  // namespace mathrl::data
