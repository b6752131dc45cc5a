// Forward-only CPU loops for the fused layer ops (float32): what a decode or prefill step on the
// CPU runs instead of each op's chain of ATen kernels (for a small model the per-kernel overhead,
// not the arithmetic, sets the time of a decode step). Autograd and other dtypes keep the
// references in fused_layer_ops.cpp. Same math as the references; RMSNorm's row sum runs in its
// own order, so results agree to rounding, not bit for bit.
#pragma once
#include <ATen/ATen.h>

namespace mathrl::kernels::cpu {

// float32 CPU tensors with a contiguous last dim.
bool fused_ops_supported(const at::Tensor& x);

at::Tensor rms_norm_forward(const at::Tensor& x, const at::Tensor& weight, double eps);
at::Tensor rope_forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);
at::Tensor swiglu_forward(const at::Tensor& gate_up);

}  // namespace mathrl::kernels::cpu
