// ATen-side helpers shared by the kernels' entry points (.cpp files built with
// MATHRL_HAVE_CUDA_KERNELS): the launchers' dtype tag for a tensor and the post-launch error check.
#pragma once
#include <ATen/ATen.h>

#include "common/error.h"
#include "token_logprobs_cuda.h"  // DType, last_error()

namespace mathrl::kernels::cuda {

// The launchers' storage type of a float32/bf16/fp16 tensor (callers check the dtype first).
inline DType dtype_of(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return DType::F32;
    case at::kBFloat16: return DType::BF16;
    case at::kHalf: return DType::F16;
    default: MATHRL_CHECK(false, "no CUDA kernel for dtype ", t.scalar_type());
  }
  return DType::F32;
}

// After a launch: "<what> failed: <CUDA error>" when the launch reported one.
inline void check_launch(const char* what) {
  if (const char* err = last_error()) MATHRL_CHECK(false, what, " failed: ", err);
}

}  // namespace mathrl::kernels::cuda
