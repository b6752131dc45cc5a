// One AdamW step over float32 master weights with gradients of any float dtype, writing the rounded
// result into the model's low-precision weights: the bf16 training step in one CUDA kernel per
// tensor. ATen's fused AdamW needs float32 gradients, so a bf16 model otherwise pays for a float32
// copy of every gradient, a scaling pass for clipping and a copy of the masters back into the
// weights (about a third of the optimizer's memory traffic); this reads the bf16 gradient as it is,
// scales it in registers and stores both copies of the weight in the same pass.
#pragma once
#include <cstdint>
#include <vector>

#include <ATen/ATen.h>

namespace mathrl::kernels {

struct AdamWStep {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  int64_t step = 1;         // the step being taken (1 for the first), for bias correction
  double grad_scale = 1.0;  // every gradient is multiplied by this first (gradient clipping)
};

// For each i, in place: masters[i], exp_avg[i], exp_avg_sq[i] (float32) take the AdamW step with
// gradient grads[i] * grad_scale (same numel, float32/bf16/fp16); when `params` is not empty,
// params[i] (the model's weights) receives masters[i] rounded to its dtype. The formula is
// torch.optim.AdamW's (decoupled decay: p *= 1 - lr * wd before the update).
// CUDA (every tensor contiguous on one GPU, built with the CUDA kernels): the kernel; otherwise
// adamw_step_reference.
void adamw_step(const std::vector<at::Tensor>& masters, const std::vector<at::Tensor>& grads,
                const std::vector<at::Tensor>& exp_avg, const std::vector<at::Tensor>& exp_avg_sq,
                const std::vector<at::Tensor>& params, const AdamWStep& step);
void adamw_step_reference(const std::vector<at::Tensor>& masters, const std::vector<at::Tensor>& grads,
                          const std::vector<at::Tensor>& exp_avg, const std::vector<at::Tensor>& exp_avg_sq,
                          const std::vector<at::Tensor>& params, const AdamWStep& step);

// True when adamw_step would run the CUDA kernel for these tensors.
bool adamw_step_fused(const std::vector<at::Tensor>& masters, const std::vector<at::Tensor>& grads,
                      const std::vector<at::Tensor>& exp_avg, const std::vector<at::Tensor>& exp_avg_sq,
                      const std::vector<at::Tensor>& params);

}  // namespace mathrl::kernels
