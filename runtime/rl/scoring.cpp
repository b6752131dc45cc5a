#include "rl/scoring.h"

#include <algorithm>

#include <torch/torch.h>

#include "common/error.h"
#include "token_logprobs.h"

namespace mathrl::rl {

namespace {

// Rows per chunk so that one chunk's logits stay near 64 Mi elements' worth of float32 (256 MiB).
int64_t entropy_chunk(int64_t requested, int64_t vocab) {
  if (requested > 0) return requested;
  return std::max<int64_t>(1, (int64_t(64) << 20) / std::max<int64_t>(1, vocab));
}

class ChunkedEntropy : public torch::autograd::Function<ChunkedEntropy> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& hidden, const at::Tensor& weight,
                            double temperature, int64_t chunk) {
    at::NoGradGuard no_grad;
    const int64_t N = hidden.size(0);
    at::Tensor out = at::empty({N}, hidden.options().dtype(at::kFloat));
    for (int64_t s = 0; s < N; s += chunk) {
      int64_t e = std::min(N, s + chunk);
      at::Tensor u = at::matmul(hidden.slice(0, s, e), weight.t()).to(at::kFloat) / temperature;
      at::Tensor logp = at::log_softmax(u, -1);
      out.slice(0, s, e).copy_(-(logp.exp() * logp).sum(-1));
    }
    ctx->save_for_backward({hidden, weight, out});
    ctx->saved_data["temperature"] = temperature;
    ctx->saved_data["chunk"] = chunk;
    return out;
  }

  // dH/dz_k = -p_k (log p_k + H) / T for z = hidden @ weight^T (p = softmax(z / T)).
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &hidden = saved[0], &weight = saved[1], &H = saved[2];
    double temperature = ctx->saved_data["temperature"].toDouble();
    int64_t chunk = ctx->saved_data["chunk"].toInt();
    at::Tensor g = grads[0].to(at::kFloat);
    const int64_t N = hidden.size(0);
    at::Tensor dh = at::zeros_like(hidden);
    at::Tensor dw = at::zeros(weight.sizes(), weight.options().dtype(at::kFloat));
    for (int64_t s = 0; s < N; s += chunk) {
      int64_t e = std::min(N, s + chunk);
      at::Tensor h = hidden.slice(0, s, e);
      at::Tensor u = at::matmul(h, weight.t()).to(at::kFloat) / temperature;
      at::Tensor logp = at::log_softmax(u, -1);
      at::Tensor dz = logp.exp() * (logp + H.slice(0, s, e).unsqueeze(1));
      dz.mul_(-(g.slice(0, s, e) / temperature).unsqueeze(1));
      at::Tensor dz_c = dz.to(weight.scalar_type());
      dh.slice(0, s, e).copy_(at::matmul(dz_c, weight));
      dw.add_(at::matmul(dz_c.t(), h).to(at::kFloat));
    }
    return {dh, dw.to(weight.scalar_type()), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor chunked_entropy(const at::Tensor& hidden, const at::Tensor& weight, double temperature, int64_t chunk_rows) {
  MATHRL_CHECK(hidden.dim() == 2 && weight.dim() == 2 && hidden.size(1) == weight.size(1),
               "chunked_entropy: hidden [N, H] and weight [V, H] expected, got ", hidden.sizes(), " and ", weight.sizes());
  MATHRL_CHECK(temperature > 0, "chunked_entropy: temperature must be > 0");
  return ChunkedEntropy::apply(hidden, weight, temperature, entropy_chunk(chunk_rows, weight.size(0)));
}

std::vector<std::vector<size_t>> plan_microbatches(const std::vector<TrainSequence>& seqs, int64_t token_budget) {
  MATHRL_CHECK(token_budget > 0, "token budget must be positive");
  std::vector<std::vector<size_t>> out;
  std::vector<size_t> current;
  int64_t longest = 0;
  for (size_t i = 0; i < seqs.size(); ++i) {
    int64_t len = sequence_length(seqs[i]);
    int64_t wider = std::max(longest, len);
    if (!current.empty() && wider * static_cast<int64_t>(current.size() + 1) > token_budget) {
      out.push_back(std::move(current));
      current.clear();
      wider = len;
    }
    current.push_back(i);
    longest = wider;
  }
  if (!current.empty()) out.push_back(std::move(current));
  return out;
}

std::pair<int64_t, int64_t> shard_groups(int64_t num_groups, int rank, int world) {
  MATHRL_CHECK(world >= 1 && rank >= 0 && rank < world, "shard_groups: rank ", rank, " of ", world);
  int64_t base = num_groups / world, extra = num_groups % world;
  int64_t begin = rank * base + std::min<int64_t>(rank, extra);
  return {begin, begin + base + (rank < extra ? 1 : 0)};
}

at::Tensor pad_rows(const std::vector<const std::vector<float>*>& rows, int64_t T, const at::Device& device) {
  at::Tensor out = at::zeros({static_cast<int64_t>(rows.size()), T}, at::kFloat);
  auto acc = out.accessor<float, 2>();
  for (size_t i = 0; i < rows.size(); ++i)
    for (size_t t = 0; t < rows[i]->size() && static_cast<int64_t>(t) < T; ++t) acc[i][t] = (*rows[i])[t];
  return out.to(device);
}

Scored score_completions(model::Decoder& model, const std::vector<const TrainSequence*>& seqs, const ScoreOptions& o) {
  MATHRL_CHECK(!seqs.empty(), "score_completions: empty micro-batch");
  const int64_t b = static_cast<int64_t>(seqs.size());
  int64_t L = 0, T = 0;
  for (const TrainSequence* s : seqs) {
    MATHRL_CHECK(!s->prompt_ids.empty() && !s->completion_ids.empty(), "a sequence needs a prompt and a completion");
    L = std::max(L, sequence_length(*s));
    T = std::max<int64_t>(T, static_cast<int64_t>(s->completion_ids.size()));
  }
  at::Device device = model->lm_head_weight().device();
  at::Tensor ids = at::zeros({b, L}, at::kLong);
  at::Tensor mask = at::zeros({b, T}, at::kFloat);
  std::vector<int64_t> rows, dst, targets;
  auto id_acc = ids.accessor<int64_t, 2>();
  auto mask_acc = mask.accessor<float, 2>();
  for (int64_t i = 0; i < b; ++i) {
    const TrainSequence& s = *seqs[i];
    const int64_t P = static_cast<int64_t>(s.prompt_ids.size()), C = static_cast<int64_t>(s.completion_ids.size());
    for (int64_t t = 0; t < P; ++t) id_acc[i][t] = s.prompt_ids[t];
    for (int64_t t = 0; t < C; ++t) {
      id_acc[i][P + t] = s.completion_ids[t];
      rows.push_back(i * L + P - 1 + t);  // the position whose output predicts completion token t
      dst.push_back(i * T + t);
      targets.push_back(s.completion_ids[t]);
      mask_acc[i][t] = 1.0f;
    }
  }
  // Right padding never affects earlier positions (causal attention).
  at::Tensor hidden = model->hidden_states(ids.to(device));
  at::Tensor row_index = at::tensor(rows, at::kLong).to(device), dst_index = at::tensor(dst, at::kLong).to(device);
  at::Tensor picked = hidden.reshape({b * L, hidden.size(2)}).index_select(0, row_index);
  kernels::TokenLogprobOptions ko;
  ko.temperature = o.temperature;
  ko.chunk_rows = o.chunk_rows;
  at::Tensor weight = model->lm_head_weight();
  at::Tensor lp = kernels::token_logprobs(picked, weight, at::tensor(targets, at::kLong).to(device), ko).logprobs;
  Scored out;
  out.mask = mask.to(device);
  out.logprobs = at::zeros({b * T}, lp.options()).index_copy(0, dst_index, lp).view({b, T});
  if (o.entropy) {
    at::Tensor h = chunked_entropy(picked, weight, o.temperature, o.chunk_rows);
    out.entropy = at::zeros({b * T}, h.options()).index_copy(0, dst_index, h).view({b, T});
  }
  if (o.values) {
    MATHRL_CHECK(model->has_value_head(), "score_completions: values requested from a model without a value head");
    at::Tensor v = model->values(hidden).reshape({b * L}).index_select(0, row_index).to(at::kFloat);
    out.values = at::zeros({b * T}, v.options()).index_copy(0, dst_index, v).view({b, T});
  }
  return out;
}

}  // namespace mathrl::rl
