// Per-token log-probabilities (and entropies, values) of completions under a decoder, for one
// micro-batch. Hidden states come from Decoder::hidden_states on the padded prompt + completion;
// only the rows that predict completion tokens go through the LM head, and they go through
// kernels/token_logprobs (chunked log-softmax + gather): the micro-batch's fp32 logits never exist.
#pragma once
#include <optional>
#include <vector>

#include <ATen/ATen.h>

#include "model/transformer.h"
#include "rl/sequences.h"

namespace mathrl::rl {

struct ScoreOptions {
  double temperature = 1.0;  // logits / T, as the sampler drew them
  bool entropy = false;      // per-token entropy, differentiable (chunked, see chunked_entropy)
  // Entropy as a metric only: taken from the log-prob pass over each chunk's logits instead of a
  // second LM-head pass, and not differentiable.
  bool entropy_metric_only = false;
  bool values = false;       // the value head's output at each completion token (PPO critic)
  int64_t chunk_rows = 0;    // rows per LM-head chunk (0: the kernel's default)
  // Consecutive completions of one prompt packed into one row after a single copy of the prompt
  // (each completion attends to the prompt and to itself): the prompt's tokens go through the model
  // once per group instead of once per completion. Same values and gradients as one row per
  // sequence up to float rounding; the mask is dense [T, T] per row, so the default is on for the
  // CPU only (on CUDA a dense mask gives up FlashAttention). Unset: by the model's device.
  std::optional<bool> share_prompts;
};

struct Scored {
  at::Tensor logprobs;  // [b, T] float32, T = longest completion; padding is 0
  at::Tensor entropy;   // [b, T] float32 when requested
  at::Tensor values;    // [b, T] float32 when requested
  at::Tensor mask;      // [b, T] float32: 1 on completion tokens
};

// Differentiable w.r.t. the model's parameters unless called under a NoGradGuard.
Scored score_completions(model::Decoder& model, const std::vector<const TrainSequence*>& seqs,
                         const ScoreOptions& options);

// Entropy of softmax(hidden @ weight^T / T) per row, [N] float32, with a gradient: forward and
// backward both walk the rows in chunks and recompute the chunk's logits (nothing of size N x V is
// kept for backward).
at::Tensor chunked_entropy(const at::Tensor& hidden, const at::Tensor& weight, double temperature, int64_t chunk_rows = 0);

// Pads per-sequence float vectors into [b, T] (float32) on `device`.
at::Tensor pad_rows(const std::vector<const std::vector<float>*>& rows, int64_t T, const at::Device& device);

}  // namespace mathrl::rl
