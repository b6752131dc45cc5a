#include "sampler/sampling.h"

#include <cmath>
#include <cstdlib>
#include <limits>

#include "common/error.h"
#include "sample_tokens.h"

namespace mathrl::sampler {

void SamplingParams::validate() const {
  auto bad = [](const char* field, const std::string& why) {
    return UsageError(str("bad argument '", field, "' to sampling: ", why));
  };
  if (greedy) return;
  if (!(temperature > 0.0) || !std::isfinite(temperature))
    throw bad("temperature", str("must be > 0 (got ", temperature, "); use greedy for argmax"));
  if (top_k < 0) throw bad("top_k", str("must be >= 0 (got ", top_k, ", 0 = off)"));
  if (!(top_p > 0.0 && top_p <= 1.0)) throw bad("top_p", str("must be in (0, 1] (got ", top_p, ")"));
  if (!(min_p >= 0.0 && min_p < 1.0)) throw bad("min_p", str("must be in [0, 1) (got ", min_p, ")"));
}

uint64_t mix_seed(uint64_t a, uint64_t b) {
  // splitmix64 finalizer over a combination of both words.
  uint64_t z = a + 0x9E3779B97F4A7C15ull * (b + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double counter_uniform(uint64_t key, uint64_t step) {
  uint64_t bits = mix_seed(mix_seed(key, step), 0x5851F42D4C957F2Dull);
  return static_cast<double>(bits >> 11) * (1.0 / 9007199254740992.0);  // 2^-53
}

namespace {

// Logits of the sorted rows with everything past `keep` set to -inf.
torch::Tensor masked_sorted(const SampleBatch& b) {
  auto V = b.sorted_logits.size(1);
  auto pos = torch::arange(V, b.keep.options()).unsqueeze(0);
  return b.sorted_logits.masked_fill(pos >= b.keep.unsqueeze(1), -std::numeric_limits<float>::infinity());
}

torch::Tensor per_row(const std::vector<RowSpec>& rows, const torch::Device& device, torch::ScalarType type,
                      double (*get)(const SamplingParams&)) {
  std::vector<double> v(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) v[i] = get(rows[i].params);
  return torch::tensor(v, torch::kFloat64).to(device, type);
}

class TopK final : public SamplerStep {
 public:
  const char* name() const override { return "top_k"; }
  void apply(SampleBatch& b) const override {
    auto V = b.sorted_logits.size(1);
    std::vector<int64_t> k(b.rows.size());
    bool any = false;
    for (size_t i = 0; i < b.rows.size(); ++i) {
      k[i] = b.rows[i].params.top_k > 0 ? std::min<int64_t>(b.rows[i].params.top_k, V) : V;
      any |= k[i] < V;
    }
    if (!any) return;
    b.keep = torch::minimum(b.keep, torch::tensor(k, torch::kInt64).to(b.keep.device()));
  }
};

class TopP final : public SamplerStep {
 public:
  const char* name() const override { return "top_p"; }
  void apply(SampleBatch& b) const override {
    bool any = false;
    for (const auto& r : b.rows) any |= r.params.top_p < 1.0;
    if (!any) return;
    // Keep token i when the mass strictly before it is below top_p (transformers' rule, seen from the
    // descending side); rows with top_p = 1 keep everything; at least one token always survives.
    auto probs = torch::softmax(masked_sorted(b), -1);
    auto before = torch::cumsum(probs, -1) - probs;
    auto p = per_row(b.rows, probs.device(), torch::kFloat32,
                     [](const SamplingParams& s) { return s.top_p < 1.0 ? s.top_p : 2.0; });
    auto count = (before < p.unsqueeze(1)).sum(-1).clamp_min(1);
    b.keep = torch::minimum(b.keep, count);
  }
};

class MinP final : public SamplerStep {
 public:
  const char* name() const override { return "min_p"; }
  void apply(SampleBatch& b) const override {
    bool any = false;
    for (const auto& r : b.rows) any |= r.params.min_p > 0.0;
    if (!any) return;
    auto probs = torch::softmax(masked_sorted(b), -1);
    auto m = per_row(b.rows, probs.device(), torch::kFloat32, [](const SamplingParams& s) { return s.min_p; });
    auto threshold = probs.select(1, 0) * m;  // sorted: column 0 holds the top probability
    auto count = (probs >= threshold.unsqueeze(1)).sum(-1).clamp_min(1);
    b.keep = torch::minimum(b.keep, count);
  }
};

}  // namespace

std::unique_ptr<SamplerStep> make_top_k() { return std::make_unique<TopK>(); }
std::unique_ptr<SamplerStep> make_top_p() { return std::make_unique<TopP>(); }
std::unique_ptr<SamplerStep> make_min_p() { return std::make_unique<MinP>(); }

Sampler::Sampler() {
  steps_.push_back(make_top_k());
  steps_.push_back(make_top_p());
  steps_.push_back(make_min_p());
}

Sampler::Sampler(std::vector<std::unique_ptr<SamplerStep>> steps) : steps_(std::move(steps)) {}

SampleBatch Sampler::prepare(const torch::Tensor& logits32, const std::vector<RowSpec>& rows) const {
  MATHRL_CHECK(logits32.dim() == 2 && logits32.size(0) == static_cast<int64_t>(rows.size()),
               "logits must be [B, V] with one RowSpec per row, got ", logits32.sizes(), " and ", rows.size(), " rows");
  SampleBatch b;
  b.rows = rows;
  auto temp = per_row(rows, logits32.device(), torch::kFloat32,
                      [](const SamplingParams& s) { return s.greedy ? 1.0 : s.temperature; });
  auto scaled = logits32 / temp.unsqueeze(1);
  // Stable sort: ties keep vocabulary order, so greedy picks the lowest id like argmax does.
  auto [values, index] = torch::sort(scaled, /*stable=*/true, /*dim=*/-1, /*descending=*/true);
  b.sorted_logits = values;
  b.sorted_index = index;
  b.keep = torch::full({logits32.size(0)}, logits32.size(1), torch::TensorOptions().dtype(torch::kInt64).device(logits32.device()));
  for (const auto& step : steps_) step->apply(b);
  return b;
}

SampleResult Sampler::sample(const torch::Tensor& logits, const std::vector<RowSpec>& rows) const {
  torch::NoGradGuard no_grad;
  SampleResult out;
  if (rows.empty()) return out;
  // Rows with filters draw in sorted order; rows without (plain temperature sampling, greedy) draw in
  // vocabulary order and skip the [B, V] sort. The path is a property of the row alone, so a row's
  // token never depends on which other rows share its batch.
  std::vector<int64_t> sorted_rows, plain_rows;
  for (size_t i = 0; i < rows.size(); ++i)
    (rows[i].params.greedy || !rows[i].params.filters() ? plain_rows : sorted_rows).push_back(static_cast<int64_t>(i));
  if (!sorted_rows.empty() && !plain_rows.empty()) {
    out.tokens.resize(rows.size());
    out.logprobs.resize(rows.size());
    for (const auto* group : {&sorted_rows, &plain_rows}) {
      std::vector<RowSpec> sub;
      for (auto i : *group) sub.push_back(rows[static_cast<size_t>(i)]);
      auto idx = torch::tensor(*group, torch::kInt64).to(logits.device());
      auto res = sample(logits.index_select(0, idx), sub);
      for (size_t k = 0; k < group->size(); ++k) {
        out.tokens[static_cast<size_t>((*group)[k])] = res.tokens[k];
        out.logprobs[static_cast<size_t>((*group)[k])] = res.logprobs[k];
      }
    }
    return out;
  }
  if (sorted_rows.empty()) return sample_plain(logits, rows);
  auto logits32 = logits.to(torch::kFloat32);
  SampleBatch b = prepare(logits32, rows);
  const auto B = static_cast<int64_t>(rows.size());
  const auto device = logits32.device();

  // Position (in sorted order) of each row's token: 0 for greedy rows, inverse CDF otherwise.
  std::vector<float> u(B);
  bool any_random = false;
  for (int64_t i = 0; i < B; ++i) {
    u[i] = rows[i].params.greedy ? -1.0f : static_cast<float>(counter_uniform(rows[i].rng_key, rows[i].step));
    any_random |= !rows[i].params.greedy;
  }
  torch::Tensor pos = torch::zeros({B}, torch::TensorOptions().dtype(torch::kInt64).device(device));
  if (any_random) {
    auto probs = torch::softmax(masked_sorted(b), -1);
    auto cdf = torch::cumsum(probs, -1);
    auto ut = torch::tensor(u, torch::kFloat32).to(device).unsqueeze(1);
    auto drawn = torch::minimum((cdf <= ut).sum(-1), b.keep - 1);  // u < 0 (greedy rows) -> 0
    pos = drawn;
  }
  auto pos2 = pos.unsqueeze(1);
  auto token = b.sorted_index.gather(1, pos2).squeeze(1);
  auto logprob = b.sorted_logits.gather(1, pos2).squeeze(1) - torch::logsumexp(b.sorted_logits, -1);
  auto token_cpu = token.to(torch::kCPU, torch::kInt32).contiguous();
  auto lp_cpu = logprob.to(torch::kCPU, torch::kFloat32).contiguous();
  out.tokens.assign(token_cpu.data_ptr<int32_t>(), token_cpu.data_ptr<int32_t>() + B);
  out.logprobs.assign(lp_cpu.data_ptr<float>(), lp_cpu.data_ptr<float>() + B);
  return out;
}

SampleResult Sampler::sample_plain(const torch::Tensor& logits, const std::vector<RowSpec>& rows) const {
  const auto B = static_cast<int64_t>(rows.size());
  // Temperatures and uniforms (negative: greedy) in one host-to-device copy.
  auto params = torch::empty({2, B}, torch::kFloat32);
  float* p = params.data_ptr<float>();
  for (int64_t i = 0; i < B; ++i) {
    const bool greedy = rows[i].params.greedy;
    p[i] = greedy ? 1.0f : static_cast<float>(rows[i].params.temperature);
    p[B + i] = greedy ? -1.0f : static_cast<float>(counter_uniform(rows[i].rng_key, rows[i].step));
  }
  auto on_device = params.to(logits.device());
  // One fused CUDA kernel (kernels/sample_tokens) unless MATHRL_FUSED_SAMPLING=0 selects the ATen
  // ops (the reference; CPU always takes it). On an H200 the kernel cut sampling from 2.6 to 0.4 ms
  // per step at batch 512 (scripts/gpu_notes.md).
  static const bool fused = [] {
    const char* v = std::getenv("MATHRL_FUSED_SAMPLING");
    return !(v && std::string(v) == "0");
  }();
  kernels::SampledTokens drawn = fused ? kernels::sample_tokens(logits, on_device[0], on_device[1])
                                       : kernels::sample_tokens_reference(logits, on_device[0], on_device[1]);
  // Token ids are exact in float32 (< 2^24): one device-to-host copy for both.
  auto both = torch::stack({drawn.tokens.to(torch::kFloat32), drawn.logprobs}).to(torch::kCPU).contiguous();
  const float* t = both.data_ptr<float>();
  SampleResult out;
  out.tokens.resize(static_cast<size_t>(B));
  for (int64_t i = 0; i < B; ++i) out.tokens[static_cast<size_t>(i)] = static_cast<int32_t>(t[i]);
  out.logprobs.assign(t + B, t + 2 * B);
  return out;
}

torch::Tensor Sampler::filtered_probs(const torch::Tensor& logits, const std::vector<RowSpec>& rows) const {
  torch::NoGradGuard no_grad;
  auto logits32 = logits.to(torch::kFloat32);
  SampleBatch b = prepare(logits32, rows);
  auto sorted_probs = torch::softmax(masked_sorted(b), -1);
  for (size_t i = 0; i < rows.size(); ++i) {
    if (!rows[i].params.greedy) continue;
    auto row = sorted_probs[static_cast<int64_t>(i)];
    row.zero_();
    row[0] = 1.0f;
  }
  return torch::zeros_like(sorted_probs).scatter_(1, b.sorted_index, sorted_probs);
}

}  // namespace mathrl::sampler
