// The GRPO / PPO policy objective on per-token log-probabilities:
//   ratio = exp(logp - old_logp)
//   pg    = -min(ratio * A, clip(ratio, 1 - epsilon, 1 + epsilon_high) * A)
//   kl    = k3: exp(ref - logp) - (ref - logp) - 1   (k1: logp - ref, k2: (logp - ref)^2 / 2)
//   token = pg + beta * kl - entropy_coef * entropy
// aggregated over completion tokens (mask) as the paper (per-sequence token mean, then the mean over
// sequences), DAPO (one mean over all tokens of the batch) or Dr. GRPO (sum over a constant
// normalizer: sequences x max_completion_length). Names follow TRL (epsilon, epsilon_high, beta, loss_type).
#pragma once
#include <string>

#include <ATen/ATen.h>

namespace mathrl::rl {

enum class KlEstimator { K1, K2, K3 };
enum class LossAggregation { Grpo, Dapo, DrGrpo };

KlEstimator parse_kl_estimator(const std::string& name);        // "k1" | "k2" | "k3"
LossAggregation parse_loss_type(const std::string& name);       // "grpo" | "dapo" | "dr_grpo"

struct PolicyLossOptions {
  double epsilon = 0.2;        // lower clip range
  double epsilon_high = 0.2;   // upper clip range (DAPO's clip-higher raises it)
  double beta = 0.04;          // KL coefficient; 0 skips the reference model
  KlEstimator kl = KlEstimator::K3;
  LossAggregation loss_type = LossAggregation::Grpo;
  int64_t max_completion_length = 0;  // Dr. GRPO's normalizer (0: use the mask's width T)
  double entropy_coef = 0.0;
};

struct PolicyLossInputs {
  at::Tensor logprobs;      // [B, T] under the current policy (requires grad)
  at::Tensor old_logprobs;  // [B, T] under the policy that sampled (no grad)
  at::Tensor ref_logprobs;  // [B, T] under the reference model (undefined when beta == 0)
  at::Tensor advantages;    // [B, T] per token, or [B] per sequence
  at::Tensor mask;          // [B, T] 1 for completion tokens that count, 0 for padding / masked
  at::Tensor entropy;       // [B, T] optional, needed when entropy_coef != 0
};

struct PolicyLossOutput {
  at::Tensor loss;  // scalar, differentiable
  // Masked-token means, for metrics (no grad):
  double kl = 0, clip_fraction_low = 0, clip_fraction_high = 0, ratio_mean = 0, pg_loss = 0;
};

PolicyLossOutput policy_loss(const PolicyLossInputs& in, const PolicyLossOptions& options);

}  // namespace mathrl::rl
