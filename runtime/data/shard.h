// Pre-tokenized binary shards: a 32-byte header then `count` token ids (uint16 or uint32, little-endian).
// Header: magic "MRLTOKS\0" (8 bytes), u32 version (=1), u32 dtype (2 = uint16, 4 = uint32), u64 count,
// u64 separator: 0 = the tokens are one stream, else (separator id + 1). Documents: when a separator is
// set, the token stream is a sequence of documents each followed by the separator token (the tokenizer's
// EOS, as `mathrl tokenize --shard` writes them); readers split on it and drop it.
// Readers memory-map the file so large shards cost no copy.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace mathrl::data {

enum class ShardDtype : uint32_t { U16 = 2, U32 = 4 };

// Writes `tokens` atomically (temporary file then rename). Throws UsageError if a token does not fit `dtype`.
// `separator` >= 0 is recorded in the header (see above); -1 = none.
void write_token_shard(const std::string& path, const std::vector<int32_t>& tokens, ShardDtype dtype,
                       int64_t separator = -1);

// Streams a shard of unknown length to disk: tokens go to PATH.tmp, finish() writes the count into the
// header and renames. Destroyed without finish(), it removes the temporary file.
class ShardWriter {
 public:
  ShardWriter(std::string path, ShardDtype dtype, int64_t separator = -1);
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;
  // Throws UsageError if a token does not fit the dtype (or is negative).
  void append(const std::vector<int32_t>& tokens);
  // Appends one document followed by the separator (which must be set).
  void append_document(const std::vector<int32_t>& tokens);
  void finish();
  uint64_t count() const { return count_; }

 private:
  void flush();
  std::string path_, tmp_;
  ShardDtype dtype_;
  int64_t separator_;
  FILE* file_ = nullptr;
  uint64_t count_ = 0;
  std::vector<unsigned char> buf_;
};

class TokenShard {
 public:
  // Opens and validates the shard; throws DataError naming the file on a bad magic, version, dtype or size.
  // `expected` (optional) must match the stored dtype, else DataError.
  explicit TokenShard(const std::string& path, int expected_dtype_bytes = 0);
  ~TokenShard();
  TokenShard(const TokenShard&) = delete;
  TokenShard& operator=(const TokenShard&) = delete;

  uint64_t size() const { return count_; }
  ShardDtype dtype() const { return dtype_; }
  int64_t separator() const { return separator_; }  // -1 when the shard has no document separator
  const std::string& path() const { return path_; }
  int32_t at(uint64_t i) const;
  // Copies tokens [begin, begin + n) into out (clipped to the end).
  void read(uint64_t begin, uint64_t n, std::vector<int32_t>& out) const;

 private:
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  const unsigned char* data_ = nullptr;
  uint64_t count_ = 0;
  ShardDtype dtype_ = ShardDtype::U16;
  int64_t separator_ = -1;
};

}  // namespace mathrl::data
