// Plain-text source: a file or a directory (its regular files, recursively, in sorted path order).
// One document per file, or one per non-blank line with `per_line`. Files are read on demand.
#pragma once
#include <string>
#include <vector>

#include "data/source.h"

namespace mathrl::data {

class TextSource : public Source {
 public:
  // Throws DataError when the path does not exist or holds no files.
  TextSource(const std::string& path, bool per_line, const Tokenizer& tokenizer, bool add_bos = true);

  size_t size() const override { return records_.size(); }
  std::string read(size_t i, Document& out) override;
  std::string locate(size_t i) const override;
  const char* kind() const override { return "text"; }

 private:
  struct Record {
    uint32_t file;
    uint32_t line;    // 1-based; 0 = the whole file
    uint64_t offset;  // per_line: start of the line
    uint64_t length;
  };
  std::vector<std::string> files_;
  std::vector<Record> records_;
  const Tokenizer& tokenizer_;
  bool add_bos_;
};

}  // namespace mathrl::data
