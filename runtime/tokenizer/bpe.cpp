#include "tokenizer/bpe.h"

#include <cstdio>
#include <queue>

#include "common/error.h"

namespace mathrl {

size_t StringHash::operator()(std::string_view s) const noexcept {
  // FNV-1a, 64-bit: short words dominate, where it beats std::hash's setup cost.
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

BpeModel::BpeModel(TokenMap vocab, const std::vector<std::pair<std::string, std::string>>& merges, Config config,
                   const std::string& where)
    : vocab_(std::move(vocab)), config_(std::move(config)) {
  merges_.reserve(merges.size() * 2);
  size_t prefix_len = config_.continuing_subword_prefix.size();
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    int32_t ia = lookup(a), ib = lookup(b);
    if (ia < 0 || ib < 0)
      throw DataError(str(where, ": merge #", rank, " '", a, " ", b, "' uses a token missing from the vocab"));
    std::string merged = a + (prefix_len && b.compare(0, prefix_len, config_.continuing_subword_prefix) == 0
                                  ? b.substr(prefix_len)
                                  : b);
    int32_t id = lookup(merged);
    if (id < 0) throw DataError(str(where, ": merge #", rank, " result '", merged, "' is not in the vocab"));
    merges_.emplace(pair_key(ia, ib), Merge{int32_t(rank), id});  // first (lowest) rank wins
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    byte_token_[b] = lookup(name);
  }
}

namespace {
struct Symbol {
  int32_t id;
  int32_t prev, next;
  uint32_t len;  // 0 once merged into its left neighbour
};
struct Candidate {
  int32_t rank, pos, new_id;
  bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};
size_t utf8_len(unsigned char c) { return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4; }
}  // namespace

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (config_.ignore_merges) {
    int32_t id = lookup(word);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  thread_local std::vector<Symbol> symbols;
  thread_local std::string piece;
  symbols.clear();
  const std::string& pre = config_.continuing_subword_prefix;
  const std::string& suf = config_.end_of_word_suffix;
  bool pending_unk = false;
  for (size_t i = 0; i < word.size();) {
    size_t n = std::min(utf8_len(static_cast<unsigned char>(word[i])), word.size() - i);
    bool first = i == 0, last = i + n == word.size();
    std::string_view ch = word.substr(i, n);
    int32_t id;
    if (pre.empty() && suf.empty()) {
      id = lookup(ch);
    } else {
      piece.clear();
      if (!first) piece += pre;
      piece += ch;
      if (last) piece += suf;
      id = lookup(piece);
    }
    if (id >= 0) {
      symbols.push_back({id, -1, -1, uint32_t(n)});
      pending_unk = false;
    } else if (config_.byte_fallback && [&] {
                 for (size_t k = 0; k < n; ++k)
                   if (byte_token_[static_cast<unsigned char>(ch[k])] < 0) return false;
                 return true;
               }()) {
      for (size_t k = 0; k < n; ++k) symbols.push_back({byte_token_[static_cast<unsigned char>(ch[k])], -1, -1, 1});
      pending_unk = false;
    } else if (config_.unk_id >= 0) {
      if (config_.fuse_unk && pending_unk) {
        symbols.back().len += uint32_t(n);
      } else {
        symbols.push_back({config_.unk_id, -1, -1, uint32_t(n)});
      }
      pending_unk = true;
    }  // no unk token: the character is dropped, as `tokenizers` does
    i += n;
  }
  int32_t count = int32_t(symbols.size());
  for (int32_t k = 0; k < count; ++k) {
    symbols[k].prev = k - 1;
    symbols[k].next = k + 1 < count ? k + 1 : -1;
  }
  if (count > 1) {
    thread_local std::vector<Candidate> heap_storage;
    heap_storage.clear();
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue(
        std::greater<Candidate>(), std::move(heap_storage));
    auto consider = [&](int32_t pos) {
      int32_t next = symbols[pos].next;
      if (next < 0) return;
      auto it = merges_.find(pair_key(symbols[pos].id, symbols[next].id));
      if (it != merges_.end()) queue.push({it->second.rank, pos, it->second.new_id});
    };
    for (int32_t k = 0; k + 1 < count; ++k) consider(k);
    while (!queue.empty()) {
      Candidate top = queue.top();
      queue.pop();
      Symbol& left = symbols[top.pos];
      if (left.len == 0 || left.next < 0) continue;
      Symbol& right = symbols[left.next];
      auto it = merges_.find(pair_key(left.id, right.id));
      if (it == merges_.end() || it->second.new_id != top.new_id) continue;  // stale entry
      left.id = top.new_id;
      left.len += right.len;
      right.len = 0;
      left.next = right.next;
      if (right.next >= 0) symbols[right.next].prev = top.pos;
      if (left.prev >= 0) consider(left.prev);
      consider(top.pos);
    }
  }
  for (int32_t k = 0; k >= 0 && k < count; k = symbols[k].next) out.push_back(symbols[k].id);
}

bool WordCache::lookup(std::string_view word, std::vector<int32_t>& out) const {
  const Shard& shard = shards_[StringHash{}(word) % kShards];
  std::lock_guard<std::mutex> lock(shard.mutex);
  auto it = shard.map.find(word);
  if (it == shard.map.end()) return false;
  out.insert(out.end(), it->second.begin(), it->second.end());
  return true;
}

void WordCache::insert(std::string_view word, const int32_t* ids, size_t n) {
  Shard& shard = shards_[StringHash{}(word) % kShards];
  std::lock_guard<std::mutex> lock(shard.mutex);
  if (shard.map.size() >= kMaxPerShard) shard.map.clear();  // crude bound; the working set refills fast
  shard.map.emplace(std::string(word), std::vector<int32_t>(ids, ids + n));
}

}  // namespace mathrl
