// Shared by the trainer tests: a tiny decoder and a deterministic, resumable in-memory document
// stream (the interface the data sources implement).
#pragma once
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include <ATen/Parallel.h>

#include "data/stream.h"
#include "model/config.h"
#include "model/transformer.h"

namespace mathrl::train::test {

// Tiny models gain nothing from intra-op threads, and on a shared 2-core CI machine OpenMP's
// spinning threads slow them down many times over; children (helpers, mathrl) inherit the setting.
inline const bool kSingleThreaded = [] {
  ::setenv("OMP_NUM_THREADS", "1", 1);
  at::set_num_threads(1);
  return true;
}();

inline model::ModelConfig tiny_config(int64_t vocab = 48) {
  model::ModelConfig c;
  c.vocab_size = vocab;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.max_position_embeddings = 256;
  c.eos_token_id = 1;
  c.bos_token_id = 0;
  c.pad_token_id = 2;
  return c;
}

// Documents of counting patterns (learnable) with lengths 3..maxlen, ids in [3, vocab); every
// `prompt_every`-th document masks its first half (instruct-style).
class VectorStream : public data::DocumentStream {
 public:
  VectorStream(int64_t count, uint64_t seed, int vocab = 48, int maxlen = 20, int prompt_every = 3) {
    std::mt19937_64 rng(seed);
    for (int64_t i = 0; i < count; ++i) {
      data::Document d;
      int len = 3 + static_cast<int>(rng() % static_cast<uint64_t>(maxlen - 2));
      int start = 3 + static_cast<int>(rng() % static_cast<uint64_t>(vocab - 3));
      int stride = 1 + static_cast<int>(rng() % 3);
      for (int t = 0; t < len; ++t) d.tokens.push_back(3 + (start - 3 + t * stride) % (vocab - 3));
      if (prompt_every > 0 && i % prompt_every == 0) {
        d.loss_mask.assign(d.tokens.size(), 1);
        for (int t = 0; t < len / 2; ++t) d.loss_mask[t] = 0;
      }
      d.source = static_cast<size_t>(i % 2);
      docs_.push_back(std::move(d));
    }
  }
  bool next(data::Document& out) override {
    if (cursor_ >= docs_.size()) return false;
    out = docs_[cursor_++];
    tokens_[out.source] += out.tokens.size();
    return true;
  }
  void set_step(int64_t step) override { last_step_ = step; }
  std::string save_state() const override {
    return "{\"cursor\":" + std::to_string(cursor_) + ",\"a\":" + std::to_string(tokens_[0]) +
           ",\"b\":" + std::to_string(tokens_[1]) + "}";
  }
  void load_state(const std::string& json) override {
    unsigned long long c = 0, a = 0, b = 0;
    if (std::sscanf(json.c_str(), "{\"cursor\":%llu,\"a\":%llu,\"b\":%llu}", &c, &a, &b) != 3)
      throw std::runtime_error("bad state " + json);
    cursor_ = c, tokens_[0] = a, tokens_[1] = b;
  }
  std::vector<std::string> source_names() const override { return {"a", "b"}; }
  std::vector<double> realized_mix() const override {
    double t = static_cast<double>(tokens_[0] + tokens_[1]);
    return {t ? tokens_[0] / t : 0.0, t ? tokens_[1] / t : 0.0};
  }
  std::string report() const override { return "a/b"; }
  size_t cursor() const { return cursor_; }
  int64_t last_step_ = 0;

 private:
  std::vector<data::Document> docs_;
  size_t cursor_ = 0;
  uint64_t tokens_[2] = {0, 0};
};

}  // namespace mathrl::train::test
