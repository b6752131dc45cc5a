// kernels/adamw_step's CUDA kernel against its ATen reference on the same GPU tensors: gradient
// dtypes, the vector path (n % 4 == 0, aligned) and the scalar one (odd n, offset views), with and
// without the low-precision weights written (label gpu).
#include <gtest/gtest.h>

#include <string>

#include <torch/torch.h>

#include "adamw_step.h"
#include "token_logprobs.h"

using namespace mathrl::kernels;

#define SKIP_WITHOUT_GPU()                                                        \
  if (!torch::cuda::is_available() || !cuda_kernels_available()) GTEST_SKIP() << "no GPU or no CUDA kernels"

namespace {

void run_case(at::ScalarType grad_dtype, int64_t n, int64_t offset, bool write_params) {
  const std::string what = std::string(c10::toString(grad_dtype)) + " n=" + std::to_string(n) + " offset=" +
                           std::to_string(offset) + (write_params ? " +params" : "");
  auto opts = at::TensorOptions().device(at::kCUDA);
  at::manual_seed(3);
  // Views at `offset` into larger buffers: offset 1 leaves the float32 data 4-byte aligned only.
  auto fresh = [&](at::ScalarType t) { return at::randn({n + offset}, opts).to(t).narrow(0, offset, n); };
  at::Tensor master = fresh(at::kFloat), m = fresh(at::kFloat) * 0.01, v = fresh(at::kFloat).abs() * 1e-4;
  at::Tensor weight = master.to(at::kBFloat16);
  at::Tensor master_ref = master.clone(), m_ref = m.clone(), v_ref = v.clone(), weight_ref = weight.clone();
  AdamWStep s;
  s.lr = 3e-3, s.beta1 = 0.9, s.beta2 = 0.95, s.eps = 1e-8, s.weight_decay = 0.1;
  for (int64_t step = 1; step <= 3; ++step) {
    at::Tensor g = fresh(grad_dtype);
    s.step = step, s.grad_scale = step == 2 ? 0.5 : 1.0;
    ASSERT_TRUE(adamw_step_fused({master}, {g}, {m}, {v}, write_params ? std::vector<at::Tensor>{weight} : std::vector<at::Tensor>{}))
        << what;
    adamw_step({master}, {g}, {m}, {v}, write_params ? std::vector<at::Tensor>{weight} : std::vector<at::Tensor>{}, s);
    adamw_step_reference({master_ref}, {g}, {m_ref}, {v_ref},
                         write_params ? std::vector<at::Tensor>{weight_ref} : std::vector<at::Tensor>{}, s);
  }
  // float32 math in both, a different operation order (division vs addcdiv): a few ulps.
  EXPECT_TRUE(at::allclose(master, master_ref, 1e-5, 1e-6)) << what << ": " << (master - master_ref).abs().max().item<double>();
  EXPECT_TRUE(at::allclose(m, m_ref, 1e-5, 1e-7)) << what;
  EXPECT_TRUE(at::allclose(v, v_ref, 1e-5, 1e-9)) << what;
  if (write_params) {
    EXPECT_TRUE(at::equal(weight, master.to(at::kBFloat16))) << what;  // exactly the masters rounded
  }
}

}  // namespace

TEST(AdamWStepGpu, KernelMatchesReference) {
  SKIP_WITHOUT_GPU();
  for (auto dtype : {at::kFloat, at::kBFloat16, at::kHalf})
    for (int64_t n : {4096, 1023, 4})
      for (int64_t offset : {0, 1})
        for (bool params : {true, false}) run_case(dtype, n, offset, params);
}

TEST(AdamWStepGpu, LargeTensorUsesTheGridStride) {
  SKIP_WITHOUT_GPU();
  run_case(at::kBFloat16, (int64_t{1} << 22) + 8, 0, true);  // more elements than one pass of the grid
}
