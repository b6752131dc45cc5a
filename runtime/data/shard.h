// Pre-tokenized binary shards: a 32-byte header then `count` token ids (uint16 or uint32, little-endian).
// Header: magic "MRLTOKS\0" (8 bytes), u32 version (=1), u32 dtype (2 = uint16, 4 = uint32), u64 count, u64 reserved.
// Readers memory-map the file so large shards cost no copy.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace mathrl::data {

enum class ShardDtype : uint32_t { U16 = 2, U32 = 4 };

// Writes `tokens` atomically (temporary file then rename). Throws UsageError if a token does not fit `dtype`.
void write_token_shard(const std::string& path, const std::vector<int32_t>& tokens, ShardDtype dtype);

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
};

}  // namespace mathrl::data
