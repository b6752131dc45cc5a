// The GRPO / PPO update on a rollout batch, micro-batched by a token budget.
//
// accumulate_policy_gradients() runs forward + backward over every micro-batch, so the parameters'
// .grad hold d(loss)/d(theta) of the whole batch; the caller then clips and steps its optimizer
// (runtime/train's AdamW), once per iteration (mu = num_iterations iterations per rollout batch).
// Each micro-batch's loss is scaled so the sum equals the full batch's loss for every aggregation
// (grpo: b / B, dapo: tokens_b / tokens_B, dr_grpo: b / B with the fixed normalizer). The batch
// totals can be given (UpdateOptions::global_*) so data-parallel ranks, each holding whole groups,
// sum to the global loss.
//
// Old log-probs: with num_iterations == 1 the data is on-policy and old = current (detached), as
// TRL does: the ratio is exactly 1 and its gradient is the policy gradient. With more iterations,
// the old log-probs are recomputed once, before the first iteration, with the training forward
// (completion_logprobs), not taken from the sampler: the engine's numerics (KV cache, batch
// composition, bf16 decode) differ from the training forward, and a ratio built from two different
// computations would be clipped for reasons that are not policy change. The sampler's log-probs
// are kept for a metric (sampler_kl: their disagreement with the trainer).
#pragma once
#include <vector>

#include "model/transformer.h"
#include "rl/policy_loss.h"
#include "rl/sequences.h"

namespace mathrl::rl {

struct UpdateOptions {
  PolicyLossOptions loss;             // beta, epsilon(s), KL estimator, loss_type, entropy_coef
  double temperature = 1.0;           // the sampling temperature (log-probs are taken at it)
  int64_t token_budget = 16384;       // padded tokens per micro-batch
  bool mask_truncated_completions = false;  // truncated completions get no loss (DAPO)
  int64_t chunk_rows = 0;             // LM-head chunk rows (0: kernel default)
  // Normalizers over the whole (global) batch; 0 = this batch's own (single process).
  double global_sequences = 0, global_tokens = 0;
};

struct UpdateStats {
  double loss = 0;          // the batch loss (sum of scaled micro-batch losses)
  double kl = 0, pg_loss = 0, ratio_mean = 0, clip_low = 0, clip_high = 0, entropy = 0;  // token means
  double tokens = 0;        // completion tokens that counted (after masking)
  int64_t microbatches = 0;
};

// Completion tokens that count in the loss's token normalizer (truncated ones left out when masked).
double counted_tokens(const std::vector<TrainSequence>& seqs, bool mask_truncated);

// Log-probs of every completion token under `model`, without gradient, micro-batched. `passes`:
// at least that many forward passes (the extra ones score a stand-in sequence and are dropped), so
// that the ranks of a sharded model (dist::FullyShardedDecoder), whose forwards are collective, run
// the same number however many sequences each holds (plan_microbatches(...).size(), max over ranks).
std::vector<std::vector<float>> completion_logprobs(model::Decoder& model, const std::vector<TrainSequence>& seqs,
                                                    double temperature, int64_t token_budget, int64_t chunk_rows = 0,
                                                    int64_t passes = 0);

// Values of the critic at every completion token, without gradient (PPO's old values).
std::vector<std::vector<float>> completion_values(model::Decoder& critic, const std::vector<TrainSequence>& seqs,
                                                  int64_t token_budget);

// `old_logprobs`: null = on-policy (old = current, detached). `ref_logprobs`: needed when beta != 0.
UpdateStats accumulate_policy_gradients(model::Decoder& policy, const std::vector<TrainSequence>& seqs,
                                        const std::vector<std::vector<float>>* old_logprobs,
                                        const std::vector<std::vector<float>>* ref_logprobs, const UpdateOptions& options);

// PPO critic: clipped value loss, 0.5 * max((V - R)^2, (clip(V, V_old - c, V_old + c) - R)^2), a mean
// over completion tokens (c <= 0: unclipped). Per-tensor, for tests and the critic update.
at::Tensor value_loss(const at::Tensor& values, const at::Tensor& old_values, const at::Tensor& returns,
                      const at::Tensor& mask, double clip);

struct ValueStats {
  double loss = 0, value_mean = 0, clip_fraction = 0, tokens = 0;
};
// Forward + backward of the value loss over micro-batches (sequence `returns` and `old_values` set).
ValueStats accumulate_value_gradients(model::Decoder& critic, const std::vector<TrainSequence>& seqs, double clip,
                                      int64_t token_budget, double global_tokens = 0);

}  // namespace mathrl::rl
