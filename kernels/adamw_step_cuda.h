// Raw launcher for the CUDA side of adamw_step (no torch headers, so nvcc stays fast).
#pragma once
#include <cstdint>

#include "token_logprobs_cuda.h"  // DType, last_error()

namespace mathrl::kernels::cuda {

// Scalars of one AdamW step, precomputed on the host (float32 in the kernel, as ATen's fused
// kernel's opmath): decay = 1 - lr * weight_decay, step_size = lr / (1 - beta1^t),
// bias2_sqrt = sqrt(1 - beta2^t), grad_scale multiplies every gradient (the clipping factor).
struct AdamWScalars {
  float beta1, beta2, eps, decay, step_size, bias2_sqrt, grad_scale;
};

// In place over n elements: master, exp_avg, exp_avg_sq float32; grad in grad_dtype; when param is
// not null it receives the new master rounded to param_dtype (bf16/fp16 model weights). Vector
// loads when n % 4 == 0 and every pointer is 16-byte (float32) / 8-byte (16-bit) aligned.
void launch_adamw_step(float* master, const void* grad, DType grad_dtype, float* exp_avg, float* exp_avg_sq,
                       void* param, DType param_dtype, int64_t n, const AdamWScalars& s, void* stream);

}  // namespace mathrl::kernels::cuda
