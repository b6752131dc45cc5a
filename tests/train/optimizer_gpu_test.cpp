// AdamW on a bf16 decoder on the GPU: the mixed-precision kernel path (kernels/adamw_step, bf16
// gradients read as they are) against float32 gradient copies + ATen's fused kernel, over steps
// that clip and steps of one and of three micro-batches (label gpu).
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "token_logprobs.h"
#include "train/optimizer.h"
#include "train_test_util.h"

using namespace mathrl;
using namespace mathrl::train;

namespace {

struct OptRun {
  model::Decoder model{nullptr};
  std::unique_ptr<AdamW> opt;
};

OptRun make_run(bool mixed_kernel) {
  torch::manual_seed(11);
  OptRun r;
  r.model = model::Decoder(test::tiny_config());
  r.model->to(at::kCUDA, at::kBFloat16);
  AdamWOptions o;
  o.clip = 0.5;  // the random model's first gradients are larger: those steps clip
  o.mixed_precision_kernel = mixed_kernel;
  r.opt = std::make_unique<AdamW>(AdamW::for_module(*r.model, o));
  return r;
}

// One step of `micro` micro-batches, the same token ids for both runs.
double step(OptRun& r, int64_t step_index, int micro) {
  for (int k = 0; k < micro; ++k) {
    auto gen = at::detail::createCPUGenerator(static_cast<uint64_t>(100 * step_index + k));
    at::Tensor ids = at::randint(3, 48, {2, 16}, gen).to(at::kCUDA);
    at::Tensor logits = r.model->logits(r.model->hidden_states(ids)).to(at::kFloat);
    at::Tensor loss = at::cross_entropy_loss(logits.narrow(1, 0, 15).reshape({-1, 48}), ids.narrow(1, 1, 15).reshape({-1}));
    loss.backward();
    r.opt->accumulate_grads();
  }
  return r.opt->step(1e-3, 1.0).grad_norm;
}

}  // namespace

TEST(AdamWGpu, MixedKernelMatchesFloat32GradientPath) {
  if (!torch::cuda::is_available() || !kernels::cuda_kernels_available()) GTEST_SKIP() << "no GPU or no CUDA kernels";
  OptRun mixed = make_run(true), plain = make_run(false);
  const int micro[] = {1, 1, 3, 1, 2};
  for (int64_t s = 0; s < 5; ++s) {
    const double a = step(mixed, s, micro[s]), b = step(plain, s, micro[s]);
    // Step 0: the same weights, so the same bf16 gradients (one norm over bf16, one over their float32
    // copies). Later the rare weights rounded the other way (below) move the gradients a little.
    EXPECT_NEAR(a, b, (s == 0 ? 1e-5 : 1e-3) * b) << "grad norm, step " << s;
  }
  // Both paths round the same float32 masters to bf16; float32 math in a different order leaves
  // the masters a few ulps apart, so a rare weight may round the other way.
  size_t differ = 0, total = 0;
  for (size_t i = 0; i < mixed.opt->params().size(); ++i) {
    at::Tensor x = mixed.opt->params()[i].detach().to(at::kFloat), y = plain.opt->params()[i].detach().to(at::kFloat);
    EXPECT_TRUE(at::allclose(x, y, 1e-2, 1e-3)) << mixed.opt->names()[i];
    differ += static_cast<size_t>((x != y).sum().item<int64_t>());
    total += static_cast<size_t>(x.numel());
  }
  EXPECT_LT(static_cast<double>(differ), 0.01 * static_cast<double>(total)) << differ << " of " << total << " weights differ";
}
