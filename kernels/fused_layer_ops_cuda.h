// Raw launchers for the CUDA side of fused_layer_ops (no torch headers, so nvcc stays fast).
// Every launcher runs on `stream` (a cudaStream_t), allocates nothing and never synchronizes, so it
// can be captured in a CUDA graph. Math is float32; loads and stores are in `dtype`.
#pragma once
#include <cstdint>

#include "token_logprobs_cuda.h"  // DType, last_error()

namespace mathrl::kernels::cuda {

// RMSNorm forward, one block per row: y [rows, hidden] (contiguous) and rstd [rows] (float32).
// x rows are `x_row_stride` elements apart, each row contiguous; weight is [hidden].
void launch_rms_norm_forward(const void* x, DType dtype, int64_t rows, int64_t hidden, int64_t x_row_stride,
                             const void* weight, float eps, void* y, float* rstd, void* stream);

// Blocks (= rows of the dweight partial buffer) the RMSNorm backward launches for `rows` rows.
inline int64_t rms_norm_backward_blocks(int64_t rows) { return rows < 1024 ? rows : 1024; }

// RMSNorm backward: grad_x [rows, hidden] (contiguous, x's dtype) from grad [rows, hidden]
// (contiguous); when grad_weight_partial is not null, block b also writes row b of the float32
// [rms_norm_backward_blocks(rows), hidden] buffer with its rows' sum of grad * n.
void launch_rms_norm_backward(const void* x, DType dtype, int64_t rows, int64_t hidden, int64_t x_row_stride,
                              const void* weight, const void* grad, const float* rstd, void* grad_x,
                              float* grad_weight_partial, void* stream);

// RoPE forward: x [batch, seq, heads, head_dim] with the given strides (the last dim contiguous),
// cos/sin [batch, seq, head_dim] float32 contiguous; y [batch, seq, heads, head_dim] contiguous.
void launch_rope_forward(const void* x, DType dtype, int64_t batch, int64_t seq, int64_t heads, int64_t head_dim,
                         int64_t stride_b, int64_t stride_t, int64_t stride_h, const float* cos, const float* sin,
                         void* y, void* stream);

// RoPE backward: grad and grad_x both contiguous [batch, seq, heads, head_dim].
void launch_rope_backward(const void* grad, DType dtype, int64_t batch, int64_t seq, int64_t heads, int64_t head_dim,
                          const float* cos, const float* sin, void* grad_x, void* stream);

// SwiGLU forward: gate_up [rows, 2 * inter] contiguous -> y [rows, inter] contiguous.
void launch_swiglu_forward(const void* gate_up, DType dtype, int64_t rows, int64_t inter, void* y, void* stream);

// SwiGLU backward: grad [rows, inter] contiguous -> grad_gate_up [rows, 2 * inter] contiguous.
void launch_swiglu_backward(const void* gate_up, const void* grad, DType dtype, int64_t rows, int64_t inter,
                            void* grad_gate_up, void* stream);

}  // namespace mathrl::kernels::cuda
