#include "data/shard_source.h"

#include <algorithm>

#include "common/error.h"

namespace mathrl::data {

ShardSource::ShardSource(const std::string& path, int expected_dtype_bytes, size_t vocab_size, uint64_t chunk_tokens)
    : shard_(std::make_unique<TokenShard>(path, expected_dtype_bytes)) {
  if (chunk_tokens == 0) throw UsageError(str(path, ": chunk_tokens must be positive"));
  const uint64_t n = shard_->size();
  const int64_t sep = shard_->separator();
  std::vector<int32_t> block;
  uint64_t doc_start = 0;
  constexpr uint64_t kBlock = 1 << 20;
  for (uint64_t b = 0; b < n; b += kBlock) {
    shard_->read(b, kBlock, block);
    for (size_t k = 0; k < block.size(); ++k) {
      const int32_t t = block[k];
      const uint64_t at = b + k;
      if (vocab_size && (t < 0 || static_cast<uint64_t>(t) >= vocab_size))
        throw DataError(str(path, ": token id ", static_cast<uint32_t>(t), " at index ", at,
                            " is outside the tokenizer's vocabulary (", vocab_size,
                            " ids); was the shard written with another tokenizer?"));
      if (sep >= 0 && t == sep) {
        if (at > doc_start) {
          starts_.push_back(doc_start);
          ends_.push_back(at);
        }
        doc_start = at + 1;
      }
    }
  }
  if (sep >= 0) {
    if (n > doc_start) {  // a last document without its separator still counts
      starts_.push_back(doc_start);
      ends_.push_back(n);
    }
  } else {
    for (uint64_t s = 0; s < n; s += chunk_tokens) {
      starts_.push_back(s);
      ends_.push_back(std::min(n, s + chunk_tokens));
    }
  }
}

std::string ShardSource::locate(size_t i) const { return str(shard_->path(), "[document ", i + 1, "]"); }

std::string ShardSource::read(size_t i, Document& out) {
  MATHRL_CHECK(i < starts_.size(), shard_->path(), ": document ", i, " out of range ", starts_.size());
  shard_->read(starts_[i], ends_[i] - starts_[i], out.tokens);
  out.loss_mask.clear();
  return "";
}

}  // namespace mathrl::data
