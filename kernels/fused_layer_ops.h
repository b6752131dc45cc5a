// Fused elementwise parts of a LLaMA decoder layer: RMSNorm, rotary embedding and SwiGLU.
//
// In bf16 training each of these is a chain of ATen kernels (casts, pow, mean, rsqrt, muls, cat,
// silu), each reading and writing the whole activation. On CUDA one kernel does the forward and one
// the backward of each op, wrapped in an autograd Function. Each op has a `*_reference` twin: the
// model's ATen math, used on other devices and dtypes, and what the CUDA kernels are tested against.
// The forward kernels round intermediates to the input dtype where the reference does, so RoPE and
// SwiGLU agree with it bit for bit up to rare exp/rsqrt last-ulp differences; RMSNorm's row sums run
// in a different order. Backward kernels compute in float32 and round once.
#pragma once
#include <ATen/ATen.h>

namespace mathrl::kernels {

// MATHRL_FUSED_LAYER_OPS=0 turns the fused CUDA paths off (read once); default on.
bool fused_layer_ops_enabled();

// RMSNorm as Hugging Face LLaMA computes it: h = float(x); n = h * rsqrt(mean(h^2, -1) + eps);
// y = weight * n.to(x.dtype) (the product in x's dtype). x [..., H], weight [H].
// Fused when x is float32/bf16/fp16 on CUDA with its last dim contiguous and weight has x's dtype
// and device, or float32 on the CPU (kernels/fused_layer_ops_cpu); otherwise the reference.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);
at::Tensor rms_norm_reference(const at::Tensor& x, const at::Tensor& weight, double eps);

// Rotary embedding on x [B, T, heads, D] (last dim contiguous, other strides arbitrary, e.g. a
// narrow() of a fused qkv projection's output viewed as [B, T, heads, D]); cos, sin [B, T, D]
// float32. y = x * c + rotate_half(x) * s with c, s = cos, sin cast to x's dtype, rotate_half(x) =
// cat(-x[..., D/2:], x[..., :D/2]). Returns a contiguous [B, T, heads, D]. No gradient for cos/sin.
at::Tensor rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);
at::Tensor rope_reference(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

// SwiGLU on a fused gate/up projection: gate_up [..., 2I] (contiguous), gate = [..., :I], up =
// [..., I:]; y = silu(gate) * up in gate_up's dtype, [..., I].
at::Tensor swiglu(const at::Tensor& gate_up);
at::Tensor swiglu_reference(const at::Tensor& gate_up);

// SwiGLU on separate gate and up projections (the CPU layout: one concatenated projection is slower
// there in float32): silu(gate) * up, both [..., I] of one shape. Fused on float32 CPU tensors
// (forward and backward); otherwise the reference.
at::Tensor silu_mul(const at::Tensor& gate, const at::Tensor& up);
at::Tensor silu_mul_reference(const at::Tensor& gate, const at::Tensor& up);

}  // namespace mathrl::kernels
