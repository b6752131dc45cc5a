// JSONL source: the file is memory-mapped and its line offsets indexed once (blank lines are not
// records); record i is parsed on demand and turned into a document by a Mapper.
#pragma once
#include <string>
#include <vector>

#include "data/source.h"

namespace mathrl::data {

class JsonlSource : public Source {
 public:
  // Throws DataError when the file cannot be opened. `add_bos`: see encode_mapped.
  JsonlSource(std::string path, Mapper mapper, const Tokenizer& tokenizer, bool add_bos = true);
  ~JsonlSource() override;
  JsonlSource(const JsonlSource&) = delete;
  JsonlSource& operator=(const JsonlSource&) = delete;

  size_t size() const override { return offsets_.size(); }
  std::string read(size_t i, Document& out) override;
  std::string locate(size_t i) const override;
  const char* kind() const override { return "jsonl"; }

 private:
  std::string path_;
  Mapper mapper_;
  const Tokenizer& tokenizer_;
  bool add_bos_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::vector<uint64_t> offsets_;  // start of each non-blank line
  std::vector<uint32_t> lengths_;  // without the line break
  std::vector<uint32_t> lines_;    // 1-based line numbers
};

}  // namespace mathrl::data
