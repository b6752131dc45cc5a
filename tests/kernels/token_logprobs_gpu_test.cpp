// The CUDA kernels against the float64 CPU reference (run on the GPU machine: label gpu).
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "token_logprobs.h"

using namespace mathrl::kernels;

namespace {
double rel_err(const at::Tensor& a, const at::Tensor& b) {
  return ((a.cpu().to(at::kDouble) - b.cpu().to(at::kDouble)).norm() / b.cpu().to(at::kDouble).norm()).item<double>();
}
}  // namespace

TEST(TokenLogprobsGpu, KernelsMatchReferenceInEachDtype) {
  if (!torch::cuda::is_available() || !cuda_kernels_available()) GTEST_SKIP() << "no GPU or no CUDA kernels";
  for (auto dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
    torch::manual_seed(99);
    const int64_t n = 300, h = 256, v = 32000;
    at::Tensor hidden = torch::randn({n, h}) * 0.1, weight = torch::randn({v, h}) * 0.1;
    at::Tensor targets = torch::randint(0, v, {n}, torch::kLong);
    at::Tensor g = torch::randn({n});
    // Reference from the same rounded inputs, in float64.
    at::Tensor hr = hidden.to(dtype).to(at::kDouble).requires_grad_(), wr = weight.to(dtype).to(at::kDouble).requires_grad_();
    at::Tensor logp = torch::log_softmax(torch::matmul(hr, wr.t()) / 0.9, 1);
    at::Tensor ref = logp.gather(1, targets.unsqueeze(1)).squeeze(1);
    at::Tensor ref_entropy = -(logp.exp() * logp).sum(1);
    (ref * g.to(at::kDouble)).sum().backward();

    at::Tensor hc = hidden.to(torch::kCUDA, dtype).requires_grad_(), wc = weight.to(torch::kCUDA, dtype).requires_grad_();
    TokenLogprobOptions opt;
    opt.temperature = 0.9;
    opt.chunk_rows = 64;
    opt.with_entropy = true;
    TokenLogprobs out = token_logprobs(hc, wc, targets.cuda(), opt);
    (out.logprobs * g.cuda()).sum().backward();
    double tol = dtype == at::kFloat ? 1e-4 : 2e-2;
    EXPECT_LT(rel_err(out.logprobs, ref.detach()), tol) << dtype;
    EXPECT_LT(rel_err(out.entropy, ref_entropy.detach()), tol) << dtype;
    EXPECT_LT(rel_err(hc.grad(), hr.grad()), tol * 2) << dtype;
    EXPECT_LT(rel_err(wc.grad(), wr.grad()), tol * 2) << dtype;
  }
}
