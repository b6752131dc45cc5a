#include "token_logprobs.h"

#include <torch/autograd.h>

#include "common/error.h"

#ifdef MATHRL_HAVE_CUDA_KERNELS
#include <c10/cuda/CUDAStream.h>

#include "cuda_launch.h"
#include "token_logprobs_cuda.h"
#endif

namespace mathrl::kernels {

bool cuda_kernels_available() {
#ifdef MATHRL_HAVE_CUDA_KERNELS
  return true;
#else
  return false;
#endif
}

namespace {

bool use_cuda(const at::Tensor& logits) {
#ifdef MATHRL_HAVE_CUDA_KERNELS
  return logits.is_cuda();
#else
  (void)logits;
  return false;
#endif
}

void check_chunk(const at::Tensor& logits, const at::Tensor& targets) {
  MATHRL_CHECK(logits.dim() == 2 && logits.stride(1) == 1, "logits must be [n, V] with contiguous rows");
  MATHRL_CHECK(targets.dim() == 1 && targets.size(0) == logits.size(0) && targets.scalar_type() == at::kLong,
               "targets must be int64 [n]");
  MATHRL_CHECK(targets.device() == logits.device(), "targets and logits on different devices");
}

int64_t pick_chunk_rows(int64_t rows, int64_t vocab, int64_t element_size, int64_t requested) {
  if (requested > 0) return requested;
  int64_t budget = 256ll << 20;  // bytes of logits per chunk
  return std::max<int64_t>(1, std::min<int64_t>(rows, budget / std::max<int64_t>(1, vocab * element_size)));
}

}  // namespace

void logsumexp_gather(const at::Tensor& logits, const at::Tensor& targets, double temperature, at::Tensor& lse,
                      at::Tensor& target_logit, at::Tensor* entropy) {
  check_chunk(logits, targets);
  MATHRL_CHECK(temperature > 0, "temperature must be positive");
  const int64_t n = logits.size(0), vocab = logits.size(1);
  auto f32 = logits.options().dtype(at::kFloat);
  lse = at::empty({n}, f32);
  target_logit = at::empty({n}, f32);
  if (entropy) *entropy = at::empty({n}, f32);
  if (n == 0) return;
#ifdef MATHRL_HAVE_CUDA_KERNELS
  if (use_cuda(logits)) {
    auto t = targets.contiguous();
    cuda::launch_logsumexp_gather(logits.data_ptr(), cuda::dtype_of(logits), n, vocab, logits.stride(0),
                                  t.data_ptr<int64_t>(), static_cast<float>(1.0 / temperature),
                                  lse.data_ptr<float>(), target_logit.data_ptr<float>(),
                                  entropy ? entropy->data_ptr<float>() : nullptr,
                                  at::cuda::getCurrentCUDAStream(logits.device().index()).stream());
    cuda::check_launch("logsumexp_gather kernel");
    return;
  }
#endif
  (void)vocab;
  at::Tensor x = logits.to(at::kFloat) / temperature;
  lse.copy_(at::logsumexp(x, 1));
  target_logit.copy_(x.gather(1, targets.unsqueeze(1)).squeeze(1));
  if (entropy) entropy->copy_(lse - (at::softmax(x, 1) * x).sum(1));
}

void logprob_grad_inplace(at::Tensor& logits, const at::Tensor& targets, const at::Tensor& lse,
                          const at::Tensor& grad, double temperature) {
  check_chunk(logits, targets);
  const int64_t n = logits.size(0), vocab = logits.size(1);
  if (n == 0) return;
#ifdef MATHRL_HAVE_CUDA_KERNELS
  if (use_cuda(logits)) {
    auto t = targets.contiguous();
    auto z = lse.to(at::kFloat).contiguous();
    auto g = grad.to(at::kFloat).contiguous();
    cuda::launch_logprob_grad(logits.data_ptr(), cuda::dtype_of(logits), n, vocab, logits.stride(0),
                              t.data_ptr<int64_t>(), z.data_ptr<float>(), g.data_ptr<float>(),
                              static_cast<float>(1.0 / temperature),
                              at::cuda::getCurrentCUDAStream(logits.device().index()).stream());
    cuda::check_launch("logprob_grad kernel");
    return;
  }
#endif
  (void)vocab;
  at::Tensor x = logits.to(at::kFloat) / temperature;
  at::Tensor g = grad.to(at::kFloat).unsqueeze(1) / temperature;
  at::Tensor out = -at::exp(x - lse.to(at::kFloat).unsqueeze(1)) * g;
  out.scatter_add_(1, targets.unsqueeze(1), g);
  logits.copy_(out);
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class TokenLogprobFunction : public torch::autograd::Function<TokenLogprobFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& hidden, const at::Tensor& weight,
                               const at::Tensor& targets, double temperature, int64_t chunk_rows, bool with_entropy) {
    const int64_t n = hidden.size(0);
    const int64_t chunk = pick_chunk_rows(n, weight.size(0), hidden.element_size(), chunk_rows);
    auto f32 = hidden.options().dtype(at::kFloat);
    at::Tensor logprobs = at::empty({n}, f32), lse_all = at::empty({n}, f32);
    at::Tensor entropy = with_entropy ? at::empty({n}, f32) : at::Tensor();
    for (int64_t a = 0; a < n; a += chunk) {
      int64_t b = std::min(n, a + chunk);
      at::Tensor logits = at::matmul(hidden.slice(0, a, b), weight.t()).contiguous();
      at::Tensor lse, target_logit, ent;
      logsumexp_gather(logits, targets.slice(0, a, b), temperature, lse, target_logit, with_entropy ? &ent : nullptr);
      logprobs.slice(0, a, b).copy_(target_logit - lse);
      lse_all.slice(0, a, b).copy_(lse);
      if (with_entropy) entropy.slice(0, a, b).copy_(ent);
    }
    ctx->save_for_backward({hidden, weight, targets, lse_all});
    ctx->saved_data["temperature"] = temperature;
    ctx->saved_data["chunk"] = chunk;
    if (!with_entropy) entropy = at::zeros({0}, f32);
    ctx->mark_non_differentiable({entropy});
    return {logprobs, entropy};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &hidden = saved[0], &weight = saved[1], &targets = saved[2], &lse = saved[3];
    const double temperature = ctx->saved_data["temperature"].toDouble();
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    at::Tensor grad = grads[0];
    const int64_t n = hidden.size(0);
    at::Tensor grad_hidden = at::empty_like(hidden);
    at::Tensor grad_weight = at::zeros(weight.sizes(), weight.options().dtype(at::kFloat));
    for (int64_t a = 0; a < n; a += chunk) {
      int64_t b = std::min(n, a + chunk);
      at::Tensor h = hidden.slice(0, a, b);
      at::Tensor logits = at::matmul(h, weight.t()).contiguous();  // recomputed, not saved
      logprob_grad_inplace(logits, targets.slice(0, a, b), lse.slice(0, a, b), grad.slice(0, a, b), temperature);
      grad_hidden.slice(0, a, b).copy_(at::matmul(logits, weight));
      grad_weight.add_(at::matmul(logits.t(), h).to(at::kFloat));
    }
    return {grad_hidden, grad_weight.to(weight.scalar_type()), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

TokenLogprobs token_logprobs(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
                             const TokenLogprobOptions& options) {
  MATHRL_CHECK(hidden.dim() == 2 && weight.dim() == 2 && hidden.size(1) == weight.size(1),
               "token_logprobs: hidden [N, H] and weight [V, H] expected, got ", hidden.sizes(), " and ", weight.sizes());
  MATHRL_CHECK(targets.dim() == 1 && targets.size(0) == hidden.size(0), "token_logprobs: targets must be [N]");
  MATHRL_CHECK(options.temperature > 0, "token_logprobs: temperature must be positive");
  at::Tensor t = targets.to(hidden.device(), at::kLong);
  if (t.numel() > 0) {
    int64_t lo = t.min().item<int64_t>(), hi = t.max().item<int64_t>();
    if (lo < 0 || hi >= weight.size(0))
      throw UsageError(str("token_logprobs: target id ", lo < 0 ? lo : hi, " is outside the vocabulary [0, ",
                           weight.size(0), ")"));
  }
  auto out = TokenLogprobFunction::apply(hidden, weight, t, options.temperature, options.chunk_rows,
                                         options.with_entropy);
  TokenLogprobs r;
  r.logprobs = out[0];
  if (options.with_entropy) r.entropy = out[1];
  return r;
}

}  // namespace mathrl::kernels
