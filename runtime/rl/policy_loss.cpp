#include "rl/policy_loss.h"

#include "common/error.h"
#include "common/strings.h"

namespace mathrl::rl {

KlEstimator parse_kl_estimator(const std::string& name) {
  if (name == "k1") return KlEstimator::K1;
  if (name == "k2") return KlEstimator::K2;
  if (name == "k3") return KlEstimator::K3;
  throw UsageError(str("unknown KL estimator '", name, "' (expected k1, k2 or k3)", did_you_mean(name, {"k1", "k2", "k3"})));
}

LossAggregation parse_loss_type(const std::string& name) {
  if (name == "grpo") return LossAggregation::Grpo;
  if (name == "dapo") return LossAggregation::Dapo;
  if (name == "dr_grpo") return LossAggregation::DrGrpo;
  throw UsageError(str("unknown loss_type '", name, "' (expected grpo, dapo or dr_grpo)",
                       did_you_mean(name, {"grpo", "dapo", "dr_grpo"})));
}

PolicyLossOutput policy_loss(const PolicyLossInputs& in, const PolicyLossOptions& o) {
  MATHRL_CHECK(in.logprobs.dim() == 2, "logprobs must be [B, T], got ", in.logprobs.sizes());
  MATHRL_CHECK(in.old_logprobs.sizes() == in.logprobs.sizes() && in.mask.sizes() == in.logprobs.sizes(),
               "old_logprobs and mask must match logprobs ", in.logprobs.sizes());
  if (o.epsilon < 0 || o.epsilon_high < 0) throw UsageError("epsilon and epsilon_high must be non-negative");
  const int64_t B = in.logprobs.size(0), T = in.logprobs.size(1);
  at::Tensor mask = in.mask.to(in.logprobs.scalar_type());
  at::Tensor adv = in.advantages.to(in.logprobs.scalar_type());
  if (adv.dim() == 1) adv = adv.unsqueeze(1).expand({B, T});
  MATHRL_CHECK(adv.sizes() == in.logprobs.sizes(), "advantages must be [B] or [B, T]");

  at::Tensor log_ratio = in.logprobs - in.old_logprobs.detach();
  at::Tensor ratio = at::exp(log_ratio);
  at::Tensor clipped = at::clamp(ratio, 1.0 - o.epsilon, 1.0 + o.epsilon_high);
  at::Tensor pg = -at::minimum(ratio * adv, clipped * adv);
  at::Tensor per_token = pg;
  at::Tensor kl;
  if (o.beta != 0.0) {
    MATHRL_CHECK(in.ref_logprobs.defined() && in.ref_logprobs.sizes() == in.logprobs.sizes(),
                 "beta != 0 needs ref_logprobs of the same shape as logprobs");
    at::Tensor d = in.ref_logprobs.detach() - in.logprobs;  // log(pi_ref / pi)
    switch (o.kl) {
      case KlEstimator::K1: kl = -d; break;
      case KlEstimator::K2: kl = 0.5 * d * d; break;
      case KlEstimator::K3: kl = at::exp(d) - d - 1.0; break;
    }
    per_token = per_token + o.beta * kl;
  }
  if (o.entropy_coef != 0.0) {
    MATHRL_CHECK(in.entropy.defined(), "entropy_coef != 0 needs per-token entropy");
    per_token = per_token - o.entropy_coef * in.entropy;
  }

  at::Tensor masked = per_token * mask;
  at::Tensor loss;
  switch (o.loss_type) {
    case LossAggregation::Grpo:
      loss = (masked.sum(1) / mask.sum(1).clamp_min(1.0)).mean();
      break;
    case LossAggregation::Dapo:
      loss = masked.sum() / mask.sum().clamp_min(1.0);
      break;
    case LossAggregation::DrGrpo:
      loss = masked.sum() / static_cast<double>(B * (o.max_completion_length > 0 ? o.max_completion_length : T));
      break;
  }

  PolicyLossOutput out;
  out.loss = loss;
  at::NoGradGuard no_grad;
  double tokens = std::max(1.0, mask.sum().item<double>());
  auto masked_mean = [&](const at::Tensor& t) { return (t * mask).sum().item<double>() / tokens; };
  out.ratio_mean = masked_mean(ratio);
  out.pg_loss = masked_mean(pg);
  if (kl.defined()) out.kl = masked_mean(kl);
  out.clip_fraction_low = masked_mean(((ratio < 1.0 - o.epsilon) & (adv < 0)).to(mask.scalar_type()));
  out.clip_fraction_high = masked_mean(((ratio > 1.0 + o.epsilon_high) & (adv > 0)).to(mask.scalar_type()));
  return out;
}

}  // namespace mathrl::rl
