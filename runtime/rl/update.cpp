#include "rl/update.h"

#include <algorithm>

#include <torch/torch.h>

#include "common/error.h"
#include "rl/scoring.h"

namespace mathrl::rl {

namespace {

std::vector<const TrainSequence*> pick(const std::vector<TrainSequence>& seqs, const std::vector<size_t>& index) {
  std::vector<const TrainSequence*> out;
  for (size_t i : index) out.push_back(&seqs[i]);
  return out;
}

int64_t longest_completion(const std::vector<const TrainSequence*>& seqs) {
  int64_t T = 0;
  for (const TrainSequence* s : seqs) T = std::max<int64_t>(T, static_cast<int64_t>(s->completion_ids.size()));
  return T;
}

at::Tensor pad_vectors(const std::vector<const std::vector<float>*>& rows, int64_t T, const at::Device& device) {
  return pad_rows(rows, T, device);
}

// [b, T]: a sequence's single advantage repeated over its tokens, or its per-token advantages.
at::Tensor advantage_tensor(const std::vector<const TrainSequence*>& seqs, int64_t T, const at::Device& device) {
  at::Tensor out = at::zeros({static_cast<int64_t>(seqs.size()), T}, at::kFloat);
  auto acc = out.accessor<float, 2>();
  for (size_t i = 0; i < seqs.size(); ++i) {
    const auto& a = seqs[i]->advantages;
    const size_t C = seqs[i]->completion_ids.size();
    MATHRL_CHECK(a.size() == 1 || a.size() == C, "sequence ", i, " has ", a.size(), " advantages for ", C,
                 " completion tokens (1 or one per token expected)");
    for (size_t t = 0; t < C; ++t) acc[i][t] = static_cast<float>(a.size() == 1 ? a[0] : a[t]);
  }
  return out.to(device);
}

at::Tensor truncation_mask(const std::vector<const TrainSequence*>& seqs, const at::Device& device) {
  std::vector<float> keep;
  for (const TrainSequence* s : seqs) keep.push_back(s->truncated ? 0.0f : 1.0f);
  return at::tensor(keep, at::kFloat).unsqueeze(1).to(device);
}

}  // namespace

double counted_tokens(const std::vector<TrainSequence>& seqs, bool mask_truncated) {
  double n = 0;
  for (const auto& s : seqs)
    if (!(mask_truncated && s.truncated)) n += static_cast<double>(s.completion_ids.size());
  return n;
}

std::vector<std::vector<float>> completion_logprobs(model::Decoder& model, const std::vector<TrainSequence>& seqs,
                                                    double temperature, int64_t token_budget, int64_t chunk_rows,
                                                    int64_t passes) {
  torch::NoGradGuard no_grad;
  std::vector<std::vector<float>> out(seqs.size());
  ScoreOptions so;
  so.temperature = temperature;
  so.chunk_rows = chunk_rows;
  const auto plan = plan_microbatches(seqs, token_budget);
  for (const auto& mb : plan) {
    Scored s = score_completions(model, pick(seqs, mb), so);
    at::Tensor lp = s.logprobs.cpu().contiguous();
    for (size_t k = 0; k < mb.size(); ++k) {
      const float* row = lp[static_cast<int64_t>(k)].data_ptr<float>();
      out[mb[k]].assign(row, row + seqs[mb[k]].completion_ids.size());
    }
  }
  TrainSequence stand_in;
  stand_in.prompt_ids = {0};
  stand_in.completion_ids = {0};
  for (int64_t extra = static_cast<int64_t>(plan.size()); extra < passes; ++extra)
    score_completions(model, {seqs.empty() ? &stand_in : &seqs[0]}, so);
  return out;
}

std::vector<std::vector<float>> completion_values(model::Decoder& critic, const std::vector<TrainSequence>& seqs,
                                                  int64_t token_budget) {
  torch::NoGradGuard no_grad;
  std::vector<std::vector<float>> out(seqs.size());
  ScoreOptions so;
  so.values = true;
  for (const auto& mb : plan_microbatches(seqs, token_budget)) {
    Scored s = score_completions(critic, pick(seqs, mb), so);
    at::Tensor v = s.values.cpu().contiguous();
    for (size_t k = 0; k < mb.size(); ++k) {
      const float* row = v[static_cast<int64_t>(k)].data_ptr<float>();
      out[mb[k]].assign(row, row + seqs[mb[k]].completion_ids.size());
    }
  }
  return out;
}

UpdateStats accumulate_policy_gradients(model::Decoder& policy, const std::vector<TrainSequence>& seqs,
                                        const std::vector<std::vector<float>>* old_logprobs,
                                        const std::vector<std::vector<float>>* ref_logprobs, const UpdateOptions& o) {
  MATHRL_CHECK(!seqs.empty(), "accumulate_policy_gradients: empty batch");
  MATHRL_CHECK(o.loss.beta == 0.0 || (ref_logprobs && ref_logprobs->size() == seqs.size()),
               "beta != 0 needs reference log-probs for every sequence");
  MATHRL_CHECK(!old_logprobs || old_logprobs->size() == seqs.size(), "old log-probs must cover every sequence");
  const double B = o.global_sequences > 0 ? o.global_sequences : static_cast<double>(seqs.size());
  const double N = o.global_tokens > 0 ? o.global_tokens : counted_tokens(seqs, o.mask_truncated_completions);
  PolicyLossOptions lo = o.loss;
  if (lo.loss_type == LossAggregation::DrGrpo && lo.max_completion_length <= 0) {
    // One normalizer for every micro-batch: the batch's longest completion.
    for (const auto& s : seqs) lo.max_completion_length = std::max<int64_t>(lo.max_completion_length, s.completion_ids.size());
  }
  at::Device device = policy->lm_head_weight().device();
  ScoreOptions so;
  so.temperature = o.temperature;
  so.entropy = true;  // a metric always; a gradient only when entropy_coef != 0
  so.entropy_metric_only = o.loss.entropy_coef == 0.0;
  so.chunk_rows = o.chunk_rows;
  UpdateStats st;
  double entropy_sum = 0;
  for (const auto& mb : plan_microbatches(seqs, o.token_budget)) {
    auto part = pick(seqs, mb);
    const int64_t T = longest_completion(part);
    Scored s = score_completions(policy, part, so);
    at::Tensor mask = s.mask;
    if (o.mask_truncated_completions) mask = mask * truncation_mask(part, device);
    PolicyLossInputs in;
    in.logprobs = s.logprobs;
    if (old_logprobs) {
      std::vector<const std::vector<float>*> rows;
      for (size_t i : mb) rows.push_back(&(*old_logprobs)[i]);
      in.old_logprobs = pad_vectors(rows, T, device);
    } else {
      in.old_logprobs = s.logprobs.detach();
    }
    if (lo.beta != 0.0) {
      std::vector<const std::vector<float>*> rows;
      for (size_t i : mb) rows.push_back(&(*ref_logprobs)[i]);
      in.ref_logprobs = pad_vectors(rows, T, device);
    }
    in.advantages = advantage_tensor(part, T, device);
    in.mask = mask;
    in.entropy = lo.entropy_coef != 0.0 ? s.entropy : s.entropy.detach();
    PolicyLossOutput out = policy_loss(in, lo);
    const double tokens = mask.sum().item<double>();
    const double scale = lo.loss_type == LossAggregation::Dapo ? tokens / std::max(1.0, N)
                                                              : static_cast<double>(mb.size()) / B;
    at::Tensor scaled = out.loss * scale;
    scaled.backward();
    st.loss += scaled.item<double>();
    st.kl += out.kl * tokens;
    st.pg_loss += out.pg_loss * tokens;
    st.ratio_mean += out.ratio_mean * tokens;
    st.clip_low += out.clip_fraction_low * tokens;
    st.clip_high += out.clip_fraction_high * tokens;
    entropy_sum += (s.entropy.detach() * mask).sum().item<double>();
    st.tokens += tokens;
    st.microbatches += 1;
  }
  const double n = std::max(1.0, st.tokens);
  st.kl /= n, st.pg_loss /= n, st.ratio_mean /= n, st.clip_low /= n, st.clip_high /= n;
  st.entropy = entropy_sum / n;
  return st;
}

at::Tensor value_loss(const at::Tensor& values, const at::Tensor& old_values, const at::Tensor& returns,
                      const at::Tensor& mask, double clip) {
  MATHRL_CHECK(values.sizes() == old_values.sizes() && values.sizes() == returns.sizes() && values.sizes() == mask.sizes(),
               "value_loss: values, old values, returns and mask must have one shape");
  at::Tensor unclipped = (values - returns).pow(2);
  at::Tensor per_token = unclipped;
  if (clip > 0) {
    at::Tensor v_clipped = old_values + at::clamp(values - old_values, -clip, clip);
    per_token = at::maximum(unclipped, (v_clipped - returns).pow(2));
  }
  return 0.5 * (per_token * mask).sum() / mask.sum().clamp_min(1.0);
}

ValueStats accumulate_value_gradients(model::Decoder& critic, const std::vector<TrainSequence>& seqs, double clip,
                                      int64_t token_budget, double global_tokens) {
  MATHRL_CHECK(!seqs.empty(), "accumulate_value_gradients: empty batch");
  double N = global_tokens;
  if (N <= 0)
    for (const auto& s : seqs) N += static_cast<double>(s.completion_ids.size());
  at::Device device = critic->lm_head_weight().device();
  ScoreOptions so;
  so.values = true;
  ValueStats st;
  double value_sum = 0, clipped = 0;
  for (const auto& mb : plan_microbatches(seqs, token_budget)) {
    auto part = pick(seqs, mb);
    const int64_t T = longest_completion(part);
    std::vector<const std::vector<float>*> old_rows;
    std::vector<std::vector<float>> ret_store;
    for (const TrainSequence* s : part) {
      MATHRL_CHECK(s->returns.size() == s->completion_ids.size() && s->old_values.size() == s->completion_ids.size(),
                   "PPO: every completion token needs a return and an old value");
      old_rows.push_back(&s->old_values);
      ret_store.emplace_back(s->returns.begin(), s->returns.end());
    }
    std::vector<const std::vector<float>*> ret_rows;
    for (const auto& r : ret_store) ret_rows.push_back(&r);
    Scored s = score_completions(critic, part, so);
    at::Tensor old_v = pad_rows(old_rows, T, device), ret = pad_rows(ret_rows, T, device);
    const double tokens = s.mask.sum().item<double>();
    at::Tensor loss = value_loss(s.values, old_v, ret, s.mask, clip) * (tokens / N);
    loss.backward();
    st.loss += loss.item<double>();
    torch::NoGradGuard no_grad;
    value_sum += (s.values * s.mask).sum().item<double>();
    if (clip > 0) clipped += (((s.values - old_v).abs() > clip).to(at::kFloat) * s.mask).sum().item<double>();
    st.tokens += tokens;
  }
  st.value_mean = value_sum / std::max(1.0, st.tokens);
  st.clip_fraction = clipped / std::max(1.0, st.tokens);
  return st;
}

}  // namespace mathrl::rl
