// Token sampling: a small chain of steps over a batch of logits (llama.cpp style), each row with its
// own parameters, plus counter-based per-sequence random numbers so a seeded sequence draws the same
// tokens whatever batch it shares and whichever slot it sits in.
//
// Order of the chain (the order transformers' logits warpers use, which TRL's GRPO generation follows):
//   temperature -> top-k -> top-p -> min-p -> draw.
// Every filter keeps a prefix of the tokens sorted by probability, so the chain works on sorted logits
// and reduces to one "how many to keep" count per row.
//
// Reported log-probability: log_softmax(logits / T)[token] over the FULL vocabulary (no filtering), i.e.
// the sampling policy's distribution at temperature T as TRL computes GRPO's old log-probs. Greedy rows
// use T = 1.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace mathrl::sampler {

struct SamplingParams {
  bool greedy = false;        // argmax (temperature, filters and seed are ignored)
  double temperature = 1.0;   // > 0 unless greedy
  int64_t top_k = 0;          // 0 = off
  double top_p = 1.0;         // in (0, 1]; 1 = off
  double min_p = 0.0;         // in [0, 1); 0 = off
  // Throws UsageError naming the bad field ("bad argument 'top_p' to sampling: ...").
  void validate() const;
  bool filters() const { return top_k > 0 || top_p < 1.0 || min_p > 0.0; }
};

// splitmix64-based counter RNG: uniform(key, step) depends only on its arguments, never on the
// order of calls, so it is reproducible under any batching.
uint64_t mix_seed(uint64_t a, uint64_t b);
double counter_uniform(uint64_t key, uint64_t step);  // in [0, 1), 53 random bits

// One row of the batch being sampled: its parameters and its RNG stream (key, step).
struct RowSpec {
  SamplingParams params;
  uint64_t rng_key = 0;
  uint64_t step = 0;
};

// The state the chain steps work on. `sorted_logits` is [B, V] float32 descending (after temperature),
// `sorted_index` maps back to token ids, `keep` [B] int64 is how many leading tokens survive.
struct SampleBatch {
  torch::Tensor sorted_logits;
  torch::Tensor sorted_index;
  torch::Tensor keep;
  std::vector<RowSpec> rows;
};

// A chain step narrows `keep` (never widens it) and may rewrite `sorted_logits`.
class SamplerStep {
 public:
  virtual ~SamplerStep() = default;
  virtual const char* name() const = 0;
  virtual void apply(SampleBatch& batch) const = 0;
};

std::unique_ptr<SamplerStep> make_top_k();  // per row: keep <= top_k
std::unique_ptr<SamplerStep> make_top_p();  // smallest prefix whose probability reaches top_p
std::unique_ptr<SamplerStep> make_min_p();  // tokens with p >= min_p * p_max

struct SampleResult {
  std::vector<int32_t> tokens;   // [B]
  std::vector<float> logprobs;   // [B], log_softmax(logits / T)[token] (T = 1 for greedy rows)
};

// Samples one token per row of `logits` ([B, V], any float dtype, any device).
class Sampler {
 public:
  Sampler();  // the default chain: top-k, top-p, min-p
  explicit Sampler(std::vector<std::unique_ptr<SamplerStep>> steps);
  SampleResult sample(const torch::Tensor& logits, const std::vector<RowSpec>& rows) const;
  // The filtered, renormalized distribution over the vocabulary ([B, V] float32, zeros for
  // filtered tokens); greedy rows get a one-hot. For tests and analysis.
  torch::Tensor filtered_probs(const torch::Tensor& logits, const std::vector<RowSpec>& rows) const;

 private:
  SampleBatch prepare(const torch::Tensor& logits32, const std::vector<RowSpec>& rows) const;
  // Rows without filters: inverse CDF in vocabulary order, no sort (kernels::sample_tokens; its
  // fused CUDA kernel on GPUs unless MATHRL_FUSED_SAMPLING=0).
  SampleResult sample_plain(const torch::Tensor& logits, const std::vector<RowSpec>& rows) const;
  std::vector<std::unique_ptr<SamplerStep>> steps_;
};

}  // namespace mathrl::sampler
