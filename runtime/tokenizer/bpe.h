// The BPE model of Hugging Face `tokenizers`: a word (one pre-token) starts as one symbol per
// character and pairs are merged lowest merge-rank first (leftmost on ties) until none applies.
// Results are cached per word, which is what makes encoding fast on repetitive math text.
#pragma once
#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace mathrl {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept;
};
using TokenMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

class BpeModel {
 public:
  struct Config {
    int32_t unk_id = -1;
    bool fuse_unk = false;
    bool byte_fallback = false;
    bool ignore_merges = false;
    std::string continuing_subword_prefix;
    std::string end_of_word_suffix;
  };

  // merges are token pairs in rank order. Throws DataError naming `where` for unknown tokens.
  BpeModel(TokenMap vocab, const std::vector<std::pair<std::string, std::string>>& merges, Config config,
           const std::string& where);

  // Appends the ids of one word. `word` is what the vocabulary is written in (byte-level chars
  // for byte-level BPE). Not cached: callers cache (see WordCache).
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

  const TokenMap& vocab() const { return vocab_; }
  int32_t lookup(std::string_view token) const {
    auto it = vocab_.find(token);
    return it == vocab_.end() ? -1 : it->second;
  }

 private:
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  static uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  TokenMap vocab_;
  std::unordered_map<uint64_t, Merge> merges_;
  Config config_;
  std::array<int32_t, 256> byte_token_{};  // "<0xAB>" ids for byte fallback, -1 when absent
};

// Thread-safe map word -> ids, sharded to keep lock contention low; bounded in size.
class WordCache {
 public:
  bool lookup(std::string_view word, std::vector<int32_t>& out) const;  // appends on hit
  void insert(std::string_view word, const int32_t* ids, size_t n);

 private:
  static constexpr size_t kShards = 16, kMaxPerShard = 1 << 13;  // ~130k words, a few MB
  struct Shard {
    mutable std::mutex mutex;
    std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> map;
  };
  Shard shards_[kShards];
};

}  // namespace mathrl
