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

namespace {

// The model's input for a micro-batch: token ids, positions and (when packed) the attention mask,
// plus for every completion token the flat index of the position whose output predicts it.
struct ScoringRows {
  at::Tensor ids, positions, mask;  // [R, W]; positions and mask undefined: plain causal rows
  std::vector<int64_t> rows, dst, targets;
  int64_t width = 0;
};

// One row per sequence: prompt then completion, right-padded (padding never reaches earlier
// positions under causal attention).
ScoringRows one_row_each(const std::vector<const TrainSequence*>& seqs, int64_t T) {
  ScoringRows r;
  for (const TrainSequence* s : seqs) r.width = std::max(r.width, sequence_length(*s));
  const int64_t b = static_cast<int64_t>(seqs.size()), L = r.width;
  r.ids = at::zeros({b, L}, at::kLong);
  auto ids = r.ids.accessor<int64_t, 2>();
  for (int64_t i = 0; i < b; ++i) {
    const TrainSequence& s = *seqs[i];
    const int64_t P = static_cast<int64_t>(s.prompt_ids.size()), C = static_cast<int64_t>(s.completion_ids.size());
    for (int64_t t = 0; t < P; ++t) ids[i][t] = s.prompt_ids[t];
    for (int64_t t = 0; t < C; ++t) {
      ids[i][P + t] = s.completion_ids[t];
      r.rows.push_back(i * L + P - 1 + t);
      r.dst.push_back(i * T + t);
      r.targets.push_back(s.completion_ids[t]);
    }
  }
  return r;
}

// Runs of consecutive sequences with one prompt share a row: [prompt | c1 | c2 | ...] where ck holds
// completion k's tokens but its last (which predicts nothing), at positions P, P+1, ... Completion
// token 0 is predicted by the prompt's last position, token t > 0 by ck's token t - 1. Query i may
// attend key j <= i of the prompt or of its own segment; padding attends to itself.
ScoringRows shared_prompt_rows(const std::vector<const TrainSequence*>& seqs, int64_t T) {
  std::vector<std::pair<size_t, size_t>> runs;  // [first, last) sequences per row
  for (size_t i = 0; i < seqs.size(); ++i) {
    if (!runs.empty() && seqs[i]->prompt_ids == seqs[runs.back().first]->prompt_ids) ++runs.back().second;
    else runs.push_back({i, i + 1});
  }
  ScoringRows r;
  for (auto [first, last] : runs) {
    int64_t w = static_cast<int64_t>(seqs[first]->prompt_ids.size());
    for (size_t i = first; i < last; ++i) w += static_cast<int64_t>(seqs[i]->completion_ids.size()) - 1;
    r.width = std::max(r.width, w);
  }
  const int64_t R = static_cast<int64_t>(runs.size()), W = r.width;
  r.ids = at::zeros({R, W}, at::kLong);
  r.positions = at::zeros({R, W}, at::kLong);
  at::Tensor segment = at::full({R, W}, -1, at::kLong);  // 0 prompt, k completion k, -1 padding
  auto ids = r.ids.accessor<int64_t, 2>(), pos = r.positions.accessor<int64_t, 2>(), seg = segment.accessor<int64_t, 2>();
  for (int64_t row = 0; row < R; ++row) {
    const auto [first, last] = runs[row];
    const auto& prompt = seqs[first]->prompt_ids;
    const int64_t P = static_cast<int64_t>(prompt.size());
    for (int64_t t = 0; t < P; ++t) ids[row][t] = prompt[t], pos[row][t] = t, seg[row][t] = 0;
    int64_t cursor = P;
    for (size_t i = first; i < last; ++i) {
      const auto& c = seqs[i]->completion_ids;
      const int64_t C = static_cast<int64_t>(c.size()), k = static_cast<int64_t>(i - first) + 1;
      for (int64_t t = 0; t < C; ++t) {
        r.rows.push_back(row * W + (t == 0 ? P - 1 : cursor + t - 1));
        r.dst.push_back(static_cast<int64_t>(i) * T + t);
        r.targets.push_back(c[t]);
      }
      for (int64_t t = 0; t + 1 < C; ++t) ids[row][cursor + t] = c[t], pos[row][cursor + t] = P + t, seg[row][cursor + t] = k;
      cursor += C - 1;
    }
    for (int64_t t = cursor; t < W; ++t) pos[row][t] = t;
  }
  at::Tensor q_seg = segment.unsqueeze(2), k_seg = segment.unsqueeze(1);  // [R, W, 1], [R, 1, W]
  at::Tensor causal = at::ones({W, W}, at::kBool).tril();
  r.mask = causal.logical_and(k_seg.eq(0).logical_or(k_seg.eq(q_seg))).logical_or(at::eye(W, at::kBool));
  return r;
}

}  // namespace

Scored score_completions(model::Decoder& model, const std::vector<const TrainSequence*>& seqs, const ScoreOptions& o) {
  MATHRL_CHECK(!seqs.empty(), "score_completions: empty micro-batch");
  const int64_t b = static_cast<int64_t>(seqs.size());
  int64_t T = 0;
  for (const TrainSequence* s : seqs) {
    MATHRL_CHECK(!s->prompt_ids.empty() && !s->completion_ids.empty(), "a sequence needs a prompt and a completion");
    T = std::max<int64_t>(T, static_cast<int64_t>(s->completion_ids.size()));
  }
  at::Device device = model->lm_head_weight().device();
  at::Tensor mask = at::zeros({b, T}, at::kFloat);
  auto mask_acc = mask.accessor<float, 2>();
  for (int64_t i = 0; i < b; ++i)
    for (size_t t = 0; t < seqs[i]->completion_ids.size(); ++t) mask_acc[i][t] = 1.0f;
  const bool share = o.share_prompts.value_or(device.is_cpu());
  ScoringRows in = share ? shared_prompt_rows(seqs, T) : one_row_each(seqs, T);
  auto on_device = [&](const at::Tensor& t) { return t.defined() ? t.to(device) : t; };
  at::Tensor hidden = model->hidden_states(in.ids.to(device), on_device(in.positions), {}, on_device(in.mask));
  const int64_t flat = hidden.size(0) * hidden.size(1);
  at::Tensor row_index = at::tensor(in.rows, at::kLong).to(device), dst_index = at::tensor(in.dst, at::kLong).to(device);
  at::Tensor picked = hidden.reshape({flat, hidden.size(2)}).index_select(0, row_index);
  kernels::TokenLogprobOptions ko;
  ko.temperature = o.temperature;
  ko.chunk_rows = o.chunk_rows;
  ko.with_entropy = o.entropy && o.entropy_metric_only;
  at::Tensor weight = model->lm_head_weight();
  kernels::TokenLogprobs scored = kernels::token_logprobs(picked, weight, at::tensor(in.targets, at::kLong).to(device), ko);
  const at::Tensor& lp = scored.logprobs;
  Scored out;
  out.mask = mask.to(device);
  out.logprobs = at::zeros({b * T}, lp.options()).index_copy(0, dst_index, lp).view({b, T});
  if (o.entropy) {
    at::Tensor h = ko.with_entropy ? scored.entropy : chunked_entropy(picked, weight, o.temperature, o.chunk_rows);
    out.entropy = at::zeros({b * T}, h.options()).index_copy(0, dst_index, h).view({b, T});
  }
  if (o.values) {
    MATHRL_CHECK(model->has_value_head(), "score_completions: values requested from a model without a value head");
    at::Tensor v = model->values(hidden).reshape({flat}).index_select(0, row_index).to(at::kFloat);
    out.values = at::zeros({b * T}, v.options()).index_copy(0, dst_index, v).view({b, T});
  }
  return out;
}

}  // namespace mathrl::rl
