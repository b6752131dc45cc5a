#include "sample_tokens.h"

#include "common/error.h"

#ifdef MATHRL_HAVE_CUDA_KERNELS
#include <c10/cuda/CUDAStream.h>

#include "cuda_launch.h"
#include "sample_tokens_cuda.h"
#endif

namespace mathrl::kernels {

namespace {

void check_inputs(const at::Tensor& logits, const at::Tensor& temperature, const at::Tensor& uniform) {
  MATHRL_CHECK(logits.dim() == 2 && logits.size(1) > 0, "sample_tokens: logits must be [B, V], got ", logits.sizes());
  const int64_t B = logits.size(0);
  for (const at::Tensor* t : {&temperature, &uniform}) {
    MATHRL_CHECK(t->dim() == 1 && t->size(0) == B && t->scalar_type() == at::kFloat,
                 "sample_tokens: temperature and uniform must be float32 [", B, "], got ", t->sizes(), " ", t->scalar_type());
    MATHRL_CHECK(t->device() == logits.device(), "sample_tokens: temperature/uniform and logits on different devices");
  }
}

}  // namespace

SampledTokens sample_tokens_reference(const at::Tensor& logits, const at::Tensor& temperature, const at::Tensor& uniform) {
  check_inputs(logits, temperature, uniform);
  at::NoGradGuard no_grad;
  auto greedy = uniform < 0;
  auto t = at::where(greedy, at::ones_like(temperature), temperature);
  auto scaled = logits.to(at::kFloat) / t.unsqueeze(1);
  auto token = scaled.argmax(-1);
  if (!greedy.all().item<bool>()) {
    auto cdf = at::cumsum(at::softmax(scaled, -1), -1);
    auto drawn = (cdf <= uniform.unsqueeze(1)).sum(-1).clamp_max(scaled.size(1) - 1);
    token = at::where(greedy, token, drawn);
  }
  auto logprob = scaled.gather(1, token.unsqueeze(1)).squeeze(1) - at::logsumexp(scaled, -1);
  return {token, logprob};
}

SampledTokens sample_tokens(const at::Tensor& logits, const at::Tensor& temperature, const at::Tensor& uniform) {
#ifdef MATHRL_HAVE_CUDA_KERNELS
  if (logits.is_cuda() && logits.stride(1) == 1 &&
      (logits.scalar_type() == at::kFloat || logits.scalar_type() == at::kBFloat16 || logits.scalar_type() == at::kHalf)) {
    check_inputs(logits, temperature, uniform);
    const int64_t B = logits.size(0);
    SampledTokens out{at::empty({B}, logits.options().dtype(at::kLong)), at::empty({B}, logits.options().dtype(at::kFloat))};
    if (B == 0) return out;
    auto temp = temperature.contiguous(), u = uniform.contiguous();
    cuda::launch_sample_tokens(logits.data_ptr(), cuda::dtype_of(logits), B, logits.size(1), logits.stride(0),
                               temp.data_ptr<float>(), u.data_ptr<float>(), out.tokens.data_ptr<int64_t>(),
                               out.logprobs.data_ptr<float>(),
                               at::cuda::getCurrentCUDAStream(logits.device().index()).stream());
    cuda::check_launch("sample_tokens kernel");
    return out;
  }
#endif
  return sample_tokens_reference(logits, temperature, uniform);
}

}  // namespace mathrl::kernels
