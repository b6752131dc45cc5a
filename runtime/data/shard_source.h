// Pre-tokenized shard source (data/shard.h). A shard with a document separator yields one document
// per separated span (separator dropped: the packer adds EOS); one without is cut into chunks of
// `chunk_tokens`. Token ids are checked against the vocabulary once, when the shard is indexed.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "data/shard.h"
#include "data/source.h"

namespace mathrl::data {

class ShardSource : public Source {
 public:
  // expected_dtype_bytes: 0 (any), 2 or 4. vocab_size: 0 skips the id check. Throws DataError for a
  // truncated shard, a wrong dtype, or an id outside the vocabulary.
  ShardSource(const std::string& path, int expected_dtype_bytes, size_t vocab_size, uint64_t chunk_tokens = 2048);

  size_t size() const override { return starts_.size(); }
  std::string read(size_t i, Document& out) override;
  std::string locate(size_t i) const override;
  const char* kind() const override { return "shard"; }

 private:
  std::unique_ptr<TokenShard> shard_;
  std::vector<uint64_t> starts_, ends_;  // token ranges of the documents
};

}  // namespace mathrl::data
