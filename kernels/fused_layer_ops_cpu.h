// CPU loops for the fused layer ops (float32): what a step on the CPU runs instead of each op's
// chain of ATen kernels (for a small model the per-kernel overhead, not the arithmetic, sets the
// time of a decode step, and the elementwise chains were a sixth of a training step). The forward
// loops serve decode, prefill and evaluation; with the backward loops, autograd Functions in
// fused_layer_ops.cpp serve training. Other dtypes keep the references. Same math as the
// references; RMSNorm's row sums run in their own order, so results agree to rounding, not bit for
// bit. Every sum runs in a fixed order, so results do not depend on the thread count.
#pragma once
#include <ATen/ATen.h>

namespace mathrl::kernels::cpu {

// float32 CPU tensors with a contiguous last dim.
bool fused_ops_supported(const at::Tensor& x);

// rstd, when given, receives the per-row 1/sqrt(mean(x^2) + eps) [rows] that the backward reads.
at::Tensor rms_norm_forward(const at::Tensor& x, const at::Tensor& weight, double eps, at::Tensor* rstd = nullptr);
at::Tensor rope_forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);
at::Tensor swiglu_forward(const at::Tensor& gate_up);
// silu(gate) * up for separate gate and up tensors of one shape.
at::Tensor silu_mul_forward(const at::Tensor& gate, const at::Tensor& up);

// Backward loops; grad has the forward output's shape. dx = r * (g*w - n * mean(g*w*n)) with
// n = x * r, dweight = sum over rows of g * n (empty when !want_weight).
std::pair<at::Tensor, at::Tensor> rms_norm_backward(const at::Tensor& x, const at::Tensor& weight,
                                                    const at::Tensor& rstd, const at::Tensor& grad, bool want_weight);
// dx1 = g1*c1 + g2*s2, dx2 = g2*c2 - g1*s1 (halves of the last dim); a contiguous [B, T, heads, D].
at::Tensor rope_backward(const at::Tensor& grad, const at::Tensor& cos, const at::Tensor& sin);
// d_gate = g * up * sig * (1 + gate * (1 - sig)), d_up = g * silu(gate).
std::pair<at::Tensor, at::Tensor> silu_mul_backward(const at::Tensor& gate, const at::Tensor& up, const at::Tensor& grad);

}  // namespace mathrl::kernels::cpu
