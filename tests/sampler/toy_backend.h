// A scripted DecodeBackend for engine tests: its "KV cache" holds the tokens themselves, and the
// logits of a position are a fixed random row chosen by a hash of the whole prefix. So any cache
// mistake (wrong slot, wrong copy, wrong position) changes the output, and a plain sequential
// reference (logits_for(prefix)) is easy to write. With `share` it shares prefixes the way the model
// backend does: a slot's first positions are read from the slot share_prefix named, and a decode
// of a slot that share_prefix never named is an error (so is a prompt slot reused too early: its
// readers then see another prompt).
#pragma once
#include <stdexcept>
#include <vector>

#include "common/error.h"
#include "sampler/backend.h"

namespace mathrl::test {

class ToyBackend : public sampler::DecodeBackend {
 public:
  ToyBackend(int64_t vocab, int64_t context, uint64_t seed = 1, double scale = 3.0, bool share = false)
      : vocab_(vocab), context_(context), share_(share) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    table_ = torch::randn({kRows, vocab}, gen, torch::kFloat32) * scale;
  }

  int64_t vocab_size() const override { return vocab_; }
  int64_t max_context() const override { return context_; }
  torch::Device device() const override { return torch::kCPU; }

  void allocate(int64_t slots, int64_t max_len) override {
    MATHRL_CHECK(max_len <= context_, "cache longer than the context");
    cache_ = torch::full({slots, max_len}, -1, torch::kInt64);
    prefix_source_.assign(static_cast<size_t>(slots), -1);
    prefix_len_.assign(static_cast<size_t>(slots), 0);
    allocations++;
    last_slots = slots;
    last_max_len = max_len;
  }

  torch::Tensor prefill(const torch::Tensor& ids, int64_t slot) override {
    const int64_t L = ids.size(0);
    MATHRL_CHECK(L <= cache_.size(1), "prefill past the cache end");
    cache_[slot].slice(0, 0, L).copy_(ids);
    prefills++;
    return logits_for(std::vector<int64_t>(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + L));
  }

  void copy_prefix(int64_t src, int64_t dst, int64_t len) override {
    cache_[dst].slice(0, 0, len).copy_(cache_[src].slice(0, 0, len));
    copies++;
  }

  void copy_positions(int64_t src, const std::vector<int64_t>& dsts, int64_t begin, int64_t end) override {
    MATHRL_CHECK(begin <= end && end <= cache_.size(1), "copy past the cache end");
    for (int64_t d : dsts) cache_[d].slice(0, begin, end).copy_(cache_[src].slice(0, begin, end));
    forks += static_cast<int>(dsts.size());
  }

  bool shares_prefixes() const override { return share_; }
  void share_prefix(const std::vector<PrefixShare>& shares) override {
    MATHRL_CHECK(share_, "share_prefix on a copying backend");
    for (const auto& s : shares) {
      prefix_source_[static_cast<size_t>(s.slot)] = s.source;
      prefix_len_[static_cast<size_t>(s.slot)] = s.len;
      if (s.slot != s.source) this->shares++;
    }
  }

  torch::Tensor decode(const torch::Tensor& tokens, const torch::Tensor& positions, const torch::Tensor& slots) override {
    const int64_t B = tokens.size(0);
    max_decode_batch = std::max(max_decode_batch, B);
    decoded_rows += B;
    std::vector<torch::Tensor> out;
    for (int64_t b = 0; b < B; ++b) {
      int64_t s = slots[b].item<int64_t>(), p = positions[b].item<int64_t>();
      MATHRL_CHECK(p < cache_.size(1), "decode past the cache end: position ", p, " of ", cache_.size(1));
      cache_[s][p] = tokens[b];
      auto row = cache_[s].slice(0, 0, p + 1).clone();
      if (share_) {
        const auto src = prefix_source_[static_cast<size_t>(s)];
        const auto len = prefix_len_[static_cast<size_t>(s)];
        MATHRL_CHECK(src >= 0 && len <= p, "slot ", s, " decodes without a prefix set");
        row.slice(0, 0, len).copy_(cache_[src].slice(0, 0, len));
      }
      std::vector<int64_t> prefix(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + p + 1);
      for (auto t : prefix) MATHRL_CHECK(t >= 0, "slot ", s, " reads an unwritten position");
      out.push_back(logits_for(prefix));
    }
    return torch::stack(out);
  }

  // The model: logits depend on every token of the prefix and its position.
  torch::Tensor logits_for(const std::vector<int64_t>& prefix) const {
    uint64_t h = 1469598103934665603ull;
    for (auto t : prefix) h = (h ^ static_cast<uint64_t>(t + 1)) * 1099511628211ull;
    return table_[static_cast<int64_t>(h % kRows)].clone();
  }

  int prefills = 0, copies = 0, allocations = 0, shares = 0, forks = 0;
  int64_t decoded_rows = 0;
  int64_t last_slots = 0, last_max_len = 0, max_decode_batch = 0;

 private:
  static constexpr int64_t kRows = 257;
  int64_t vocab_, context_;
  bool share_;
  torch::Tensor table_, cache_;
  std::vector<int64_t> prefix_source_, prefix_len_;
};

}  // namespace mathrl::test
