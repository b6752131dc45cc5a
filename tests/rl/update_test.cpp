// The micro-batched update on a tiny decoder against a full-batch reference built here from full
// logits (log_softmax over the whole vocabulary, one sequence at a time): same loss and same
// parameter gradients for every aggregation, with truncation masking, KL and the entropy bonus.
// Also the chunked entropy's value and gradient against autograd.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include <torch/torch.h>

#include "model/transformer.h"
#include "rl/scoring.h"
#include "rl/update.h"

using namespace mathrl;
using namespace mathrl::rl;

namespace {

model::ModelConfig tiny_config() {
  model::ModelConfig c;
  c.vocab_size = 11;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.max_position_embeddings = 32;
  return c;
}

std::vector<TrainSequence> make_batch(uint64_t seed) {
  std::mt19937 rng(seed);
  std::vector<TrainSequence> seqs(6);
  for (size_t i = 0; i < seqs.size(); ++i) {
    auto& s = seqs[i];
    int P = 2 + rng() % 4, C = 1 + rng() % 6;
    for (int t = 0; t < P; ++t) s.prompt_ids.push_back(rng() % 11);
    for (int t = 0; t < C; ++t) s.completion_ids.push_back(rng() % 11);
    if (i % 3 == 1) {
      for (int t = 0; t < C; ++t) s.advantages.push_back(std::cos(1.0 * i + t));  // per token
    } else {
      s.advantages = {static_cast<double>(i) / 3.0 - 0.8};
    }
    s.truncated = i % 4 == 0;
  }
  return seqs;
}

std::vector<at::Tensor> grads_of(model::Decoder& m) {
  std::vector<at::Tensor> g;
  for (auto& p : m->parameters()) g.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
  return g;
}

void zero(model::Decoder& m) {
  for (auto& p : m->parameters())
    if (p.grad().defined()) p.mutable_grad().zero_();
}

}  // namespace

TEST(Update, MicrobatchedGradientsMatchAFullLogitsReference) {
  model::Decoder policy = model::random_decoder(tiny_config(), 4);
  auto seqs = make_batch(9);
  const double temperature = 0.7;
  // Old and reference log-probs: the policy's own, perturbed, so ratios leave the clip range.
  auto base = completion_logprobs(policy, seqs, temperature, 1 << 20);
  std::mt19937 rng(3);
  std::normal_distribution<float> noise(0.0f, 0.3f);
  std::vector<std::vector<float>> old = base, ref = base;
  for (auto& v : old) for (float& x : v) x += noise(rng);
  for (auto& v : ref) for (float& x : v) x += noise(rng);

  for (auto loss_type : {LossAggregation::Grpo, LossAggregation::Dapo, LossAggregation::DrGrpo}) {
    for (bool mask_truncated : {false, true}) {
      UpdateOptions o;
      o.loss.loss_type = loss_type;
      o.loss.beta = 0.04;
      o.loss.epsilon = 0.2;
      o.loss.epsilon_high = 0.28;
      o.loss.entropy_coef = 0.01;
      o.loss.max_completion_length = 8;
      o.temperature = temperature;
      o.token_budget = 12;  // several micro-batches
      o.mask_truncated_completions = mask_truncated;
      o.chunk_rows = 3;
      zero(policy);
      UpdateStats st = accumulate_policy_gradients(policy, seqs, &old, &ref, o);
      EXPECT_GT(st.microbatches, 2);
      auto got = grads_of(policy);
      zero(policy);

      // Reference: every sequence alone, full logits, the objective written out.
      double B = static_cast<double>(seqs.size()), tokens = 0;
      for (const auto& s : seqs)
        if (!(mask_truncated && s.truncated)) tokens += s.completion_ids.size();
      at::Tensor total = torch::zeros({}, torch::kFloat);
      for (size_t i = 0; i < seqs.size(); ++i) {
        const auto& s = seqs[i];
        std::vector<int64_t> ids(s.prompt_ids.begin(), s.prompt_ids.end());
        ids.insert(ids.end(), s.completion_ids.begin(), s.completion_ids.end());
        at::Tensor h = policy->hidden_states(torch::tensor(ids).unsqueeze(0));
        const int64_t P = s.prompt_ids.size(), C = s.completion_ids.size();
        at::Tensor logits = policy->logits(h)[0].slice(0, P - 1, P - 1 + C).to(torch::kFloat) / temperature;
        at::Tensor logsm = torch::log_softmax(logits, -1);
        at::Tensor lp = logsm.gather(1, torch::tensor(std::vector<int64_t>(s.completion_ids.begin(), s.completion_ids.end())).unsqueeze(1)).squeeze(1);
        at::Tensor entropy = -(logsm.exp() * logsm).sum(-1);
        at::Tensor lo = torch::tensor(old[i]), lr = torch::tensor(ref[i]);
        at::Tensor adv = s.advantages.size() == 1 ? torch::full({C}, s.advantages[0], torch::kFloat)
                                                  : torch::tensor(std::vector<float>(s.advantages.begin(), s.advantages.end()));
        at::Tensor ratio = torch::exp(lp - lo);
        at::Tensor pg = -torch::minimum(ratio * adv, torch::clamp(ratio, 0.8, 1.28) * adv);
        at::Tensor d = lr - lp;
        at::Tensor term = pg + 0.04 * (torch::exp(d) - d - 1) - 0.01 * entropy;
        if (mask_truncated && s.truncated) continue;
        if (loss_type == LossAggregation::Grpo) total = total + term.sum() / (C * B);
        if (loss_type == LossAggregation::Dapo) total = total + term.sum() / tokens;
        if (loss_type == LossAggregation::DrGrpo) total = total + term.sum() / (8 * B);
      }
      total.backward();
      auto want = grads_of(policy);
      EXPECT_NEAR(st.loss, total.item<double>(), 1e-5);
      double max_diff = 0, max_ref = 0;
      for (size_t k = 0; k < got.size(); ++k) {
        max_diff = std::max(max_diff, (got[k] - want[k]).abs().max().item<double>());
        max_ref = std::max(max_ref, want[k].abs().max().item<double>());
      }
      EXPECT_GT(max_ref, 1e-4);
      EXPECT_LT(max_diff, 1e-5 + 1e-4 * max_ref) << static_cast<int>(loss_type) << " " << mask_truncated;
    }
  }
}

TEST(Update, OnPolicyRatioIsOneAndPaddingDoesNotLeak) {
  model::Decoder policy = model::random_decoder(tiny_config(), 5);
  auto seqs = make_batch(21);
  UpdateOptions o;
  o.loss.beta = 0.0;
  o.token_budget = 1 << 20;
  UpdateStats st = accumulate_policy_gradients(policy, seqs, nullptr, nullptr, o);
  EXPECT_NEAR(st.ratio_mean, 1.0, 1e-6);
  EXPECT_EQ(st.clip_low + st.clip_high, 0.0);
  // Scores of a sequence in a padded batch equal its scores alone.
  auto together = completion_logprobs(policy, seqs, 1.0, 1 << 20);
  for (size_t i = 0; i < seqs.size(); ++i) {
    auto alone = completion_logprobs(policy, {seqs[i]}, 1.0, 1 << 20);
    for (size_t t = 0; t < alone[0].size(); ++t) EXPECT_NEAR(together[i][t], alone[0][t], 1e-5);
  }
}

TEST(Update, ChunkedEntropyMatchesAutogradOnFullLogits) {
  torch::manual_seed(8);
  at::Tensor h0 = torch::randn({10, 6}), w0 = torch::randn({13, 6});
  at::Tensor g = torch::randn({10});
  for (double temperature : {1.0, 0.6}) {
    at::Tensor h = h0.clone().requires_grad_(), w = w0.clone().requires_grad_();
    at::Tensor e = chunked_entropy(h, w, temperature, 3);
    (e * g).sum().backward();
    at::Tensor h2 = h0.clone().requires_grad_(), w2 = w0.clone().requires_grad_();
    at::Tensor logsm = torch::log_softmax(torch::matmul(h2, w2.t()) / temperature, -1);
    at::Tensor e2 = -(logsm.exp() * logsm).sum(-1);
    (e2 * g).sum().backward();
    EXPECT_LT((e - e2).abs().max().item<double>(), 1e-5);
    EXPECT_LT((h.grad() - h2.grad()).abs().max().item<double>(), 1e-5);
    EXPECT_LT((w.grad() - w2.grad()).abs().max().item<double>(), 1e-5);
  }
}

// What the rl stage relies on when it leaves zero-advantage completions out of the update (no KL,
// no entropy term): they add nothing, so the kept completions with the whole batch's normalizers
// give the same loss and gradients. Off-policy old log-probs, so ratios and clipping are in play.
TEST(Update, ZeroAdvantageCompletionsAddNothingWithoutKlOrEntropy) {
  model::Decoder policy = model::random_decoder(tiny_config(), 5);
  model::Decoder behaviour = model::random_decoder(tiny_config(), 6);
  auto seqs = make_batch(31);
  seqs[0].advantages = {0.0};
  seqs[1].advantages.assign(seqs[1].completion_ids.size(), 0.0);  // per token, all zero
  const auto old_lp = completion_logprobs(behaviour, seqs, 1.0, 1 << 20);
  std::vector<TrainSequence> kept(seqs.begin() + 2, seqs.end());
  std::vector<std::vector<float>> kept_lp(old_lp.begin() + 2, old_lp.end());
  for (auto loss_type : {LossAggregation::Grpo, LossAggregation::Dapo}) {
    SCOPED_TRACE(loss_type == LossAggregation::Grpo ? "grpo" : "dapo");
    UpdateOptions o;
    o.loss.beta = 0.0;
    o.loss.loss_type = loss_type;
    o.loss.epsilon = o.loss.epsilon_high = 0.1;
    o.token_budget = 24;  // several micro-batches
    zero(policy);
    UpdateStats all = accumulate_policy_gradients(policy, seqs, &old_lp, nullptr, o);
    auto g_all = grads_of(policy);
    double tokens = 0;
    for (const auto& s : seqs) tokens += static_cast<double>(s.completion_ids.size());
    o.global_sequences = static_cast<double>(seqs.size());
    o.global_tokens = tokens;
    zero(policy);
    UpdateStats part = accumulate_policy_gradients(policy, kept, &kept_lp, nullptr, o);
    auto g_part = grads_of(policy);
    EXPECT_NEAR(all.loss, part.loss, 1e-7);
    EXPECT_GT(all.clip_low + all.clip_high, 0.0);  // clipping was active
    double diff = 0, scale = 0;
    for (size_t i = 0; i < g_all.size(); ++i) {
      diff = std::max(diff, (g_all[i] - g_part[i]).abs().max().item<double>());
      scale = std::max(scale, g_all[i].abs().max().item<double>());
    }
    EXPECT_GT(scale, 1e-4);
    EXPECT_LT(diff, 1e-7);
  }
}

// Completions of one prompt packed after a single copy of it (ScoreOptions::share_prompts) score
// like one row per sequence: log-probs, entropies, values and the parameter gradients of a loss
// over all three. Groups of 3 and 2 with prompts of different lengths, a completion of one token
// (it adds no input tokens), a lone sequence, and a prompt that recurs later (a new row).
TEST(Update, SharedPromptRowsScoreLikeOneRowPerSequence) {
  std::mt19937 rng(4);
  auto ids = [&](int n) {
    std::vector<int32_t> v;
    for (int i = 0; i < n; ++i) v.push_back(rng() % 11);
    return v;
  };
  const std::vector<int32_t> p1 = ids(5), p2 = ids(2), p3 = ids(3);
  std::vector<TrainSequence> seqs;
  for (auto [prompt, C] : std::vector<std::pair<std::vector<int32_t>, int>>{
           {p1, 4}, {p1, 1}, {p1, 6}, {p2, 3}, {p2, 5}, {p3, 2}, {p1, 3}}) {
    TrainSequence s;
    s.prompt_ids = prompt;
    s.completion_ids = ids(C);
    seqs.push_back(s);
  }
  std::vector<const TrainSequence*> view;
  for (const auto& s : seqs) view.push_back(&s);
  model::Decoder m = model::random_decoder(tiny_config(), 7);
  m->add_value_head();
  std::vector<Scored> scored;
  std::vector<std::vector<at::Tensor>> grads;
  for (bool share : {false, true}) {
    ScoreOptions o;
    o.entropy = o.values = true;
    o.share_prompts = share;
    zero(m);
    Scored s = score_completions(m, view, o);
    at::Tensor w = torch::randn(s.logprobs.sizes(), torch::Generator(at::detail::createCPUGenerator(3)));
    ((s.logprobs + 0.3 * s.entropy + 0.7 * s.values) * w * s.mask).sum().backward();
    scored.push_back(s);
    grads.push_back(grads_of(m));
  }
  EXPECT_TRUE(torch::equal(scored[0].mask, scored[1].mask));
  EXPECT_TRUE(torch::allclose(scored[0].logprobs, scored[1].logprobs, 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(scored[0].entropy, scored[1].entropy, 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(scored[0].values, scored[1].values, 1e-5, 1e-5));
  for (size_t i = 0; i < grads[0].size(); ++i)
    EXPECT_TRUE(torch::allclose(grads[0][i], grads[1][i], 1e-4, 1e-5)) << "parameter " << i;
  // The packed rows are the lengths summed, not the padded products: nothing to compare here but
  // that both paths saw every completion token.
  EXPECT_EQ(scored[1].mask.sum().item<int64_t>(), 4 + 1 + 6 + 3 + 5 + 2 + 3);
  // Entropy as a metric only (from the log-prob pass): the same values, no gradient.
  ScoreOptions metric;
  metric.entropy = metric.entropy_metric_only = true;
  Scored e = score_completions(m, view, metric);
  EXPECT_TRUE(torch::allclose(e.entropy * e.mask, scored[0].entropy.detach() * e.mask, 1e-5, 1e-5));
  EXPECT_FALSE(e.entropy.requires_grad());
  EXPECT_TRUE(torch::equal(e.logprobs.detach(), score_completions(m, view, ScoreOptions{}).logprobs.detach()));
}
