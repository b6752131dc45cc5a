#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "cuda_dtype.cuh"
#include "fused_layer_ops_cuda.h"

namespace mathrl::kernels::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65536;  // grid-stride loops cover whatever lies beyond

unsigned grid_for(int64_t items) { return static_cast<unsigned>(items < kMaxBlocks ? items : kMaxBlocks); }

// The float value a tensor of dtype T holds after storing v (identity for float).
template <class T>
__device__ __forceinline__ float round_to(float v) {
  return to_float(from_float<T>(v));
}

// Sum of v over the block's kThreads threads, returned to every thread. scratch: kThreads / 32 floats.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float total = 0.f;
  for (int w = 0; w < kThreads / 32; ++w) total += scratch[w];
  __syncthreads();  // the next call overwrites scratch
  return total;
}

// ---- RMSNorm -----------------------------------------------------------------------------------

// One block per row (grid-stride over rows). n is rounded to T before the weight product, as the
// reference's n.to(x.dtype) is.
template <class T>
__global__ void __launch_bounds__(kThreads)
    rms_norm_forward_kernel(const T* __restrict__ x, int64_t rows, int64_t hidden, int64_t x_row_stride,
                            const T* __restrict__ weight, float eps, T* __restrict__ y, float* __restrict__ rstd) {
  __shared__ float scratch[kThreads / 32];
  const float inv_hidden = 1.f / static_cast<float>(hidden);
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * x_row_stride;
    float sum_sq = 0.f;
    for (int64_t j = threadIdx.x; j < hidden; j += kThreads) {
      const float v = to_float(xr[j]);
      sum_sq += v * v;
    }
    const float r = rsqrtf(block_sum(sum_sq, scratch) * inv_hidden + eps);
    T* yr = y + row * hidden;
    for (int64_t j = threadIdx.x; j < hidden; j += kThreads) {
      const float n = round_to<T>(to_float(xr[j]) * r);
      yr[j] = from_float<T>(to_float(weight[j]) * n);
    }
    if (threadIdx.x == 0) rstd[row] = r;
  }
}

// dx = r * (g*w - n * mean(g*w*n)) with n = x * r. Block b handles rows b, b + gridDim.x, ... and
// sums g * round(n) into row b of `partial`; each thread only touches its own columns there (the
// same j in every loop), so the running sums need no synchronization or atomics.
template <class T>
__global__ void __launch_bounds__(kThreads)
    rms_norm_backward_kernel(const T* __restrict__ x, int64_t rows, int64_t hidden, int64_t x_row_stride,
                             const T* __restrict__ weight, const T* __restrict__ grad, const float* __restrict__ rstd,
                             T* __restrict__ grad_x, float* __restrict__ partial) {
  __shared__ float scratch[kThreads / 32];
  const float inv_hidden = 1.f / static_cast<float>(hidden);
  float* acc = partial ? partial + static_cast<int64_t>(blockIdx.x) * hidden : nullptr;
  if (acc)
    for (int64_t j = threadIdx.x; j < hidden; j += kThreads) acc[j] = 0.f;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * x_row_stride;
    const T* gr = grad + row * hidden;
    const float r = rstd[row];
    float dot = 0.f;
    for (int64_t j = threadIdx.x; j < hidden; j += kThreads)
      dot += to_float(gr[j]) * to_float(weight[j]) * (to_float(xr[j]) * r);
    const float mean = block_sum(dot, scratch) * inv_hidden;
    T* dxr = grad_x + row * hidden;
    for (int64_t j = threadIdx.x; j < hidden; j += kThreads) {
      const float g = to_float(gr[j]);
      const float n = to_float(xr[j]) * r;  // the same product as the forward's
      dxr[j] = from_float<T>(r * (g * to_float(weight[j]) - n * mean));
      if (acc) acc[j] += g * round_to<T>(n);
    }
  }
}

// ---- RoPE --------------------------------------------------------------------------------------

// One block per (b, t) position (grid-stride); thread p handles the pair (k, k + half) of head
// p / half, so the cos/sin of a position are read once per block from L1 and nothing needs int64
// division per element. Forward: y1 = x1*c1 - x2*s1, y2 = x2*c2 + x1*s2. Backward (the transpose):
// dx1 = g1*c1 + g2*s2, dx2 = g2*c2 - g1*s1.
template <class T, bool kBackward>
__global__ void __launch_bounds__(kThreads)
    rope_kernel(const T* __restrict__ in, int64_t tokens, int64_t seq, int heads, int half, int64_t stride_b,
                int64_t stride_t, int64_t stride_h, const float* __restrict__ cos, const float* __restrict__ sin,
                T* __restrict__ out) {
  const int head_dim = 2 * half, pairs = heads * half;
  for (int64_t bt = blockIdx.x; bt < tokens; bt += gridDim.x) {
    const int64_t b = bt / seq, t = bt - b * seq;
    const T* in_bt = in + b * stride_b + t * stride_t;
    T* out_bt = out + bt * heads * head_dim;
    const float* cos_bt = cos + bt * head_dim;
    const float* sin_bt = sin + bt * head_dim;
    for (int p = threadIdx.x; p < pairs; p += kThreads) {
      const int h = p / half, k = p - h * half;
      const T* src = in_bt + h * stride_h;
      T* dst = out_bt + static_cast<int64_t>(h) * head_dim;
      const float v1 = to_float(src[k]), v2 = to_float(src[k + half]);
      // cos/sin as the reference's .to(x.dtype) leaves them.
      const float c1 = round_to<T>(cos_bt[k]), c2 = round_to<T>(cos_bt[k + half]);
      const float s1 = round_to<T>(sin_bt[k]), s2 = round_to<T>(sin_bt[k + half]);
      if constexpr (kBackward) {
        dst[k] = from_float<T>(v1 * c1 + v2 * s2);
        dst[k + half] = from_float<T>(v2 * c2 - v1 * s1);
      } else {
        // Each product and the sum rounded to T, like the reference's separate mul, mul and add
        // kernels; the _rn intrinsics keep nvcc from contracting them into an FMA (float32 differs).
        dst[k] = from_float<T>(__fadd_rn(round_to<T>(__fmul_rn(v1, c1)), round_to<T>(__fmul_rn(-v2, s1))));
        dst[k + half] = from_float<T>(__fadd_rn(round_to<T>(__fmul_rn(v2, c2)), round_to<T>(__fmul_rn(v1, s2))));
      }
    }
  }
}

// ---- SwiGLU ------------------------------------------------------------------------------------

// One block per row (grid-stride); silu as ATen computes it, x / (1 + exp(-x)), rounded to T before
// the product like the reference's silu tensor.
template <class T>
__global__ void __launch_bounds__(kThreads)
    swiglu_forward_kernel(const T* __restrict__ gate_up, int64_t rows, int64_t inter, T* __restrict__ y) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* gate = gate_up + row * 2 * inter;
    const T* up = gate + inter;
    T* yr = y + row * inter;
    for (int64_t j = threadIdx.x; j < inter; j += kThreads) {
      const float a = to_float(gate[j]);
      const float silu = round_to<T>(a / (1.f + expf(-a)));
      yr[j] = from_float<T>(silu * to_float(up[j]));
    }
  }
}

// d_gate = g * up * sig * (1 + a * (1 - sig)), d_up = g * round(silu(a)); one [rows, 2I] output.
template <class T>
__global__ void __launch_bounds__(kThreads)
    swiglu_backward_kernel(const T* __restrict__ gate_up, const T* __restrict__ grad, int64_t rows, int64_t inter,
                           T* __restrict__ grad_gate_up) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* gate = gate_up + row * 2 * inter;
    const T* up = gate + inter;
    const T* gr = grad + row * inter;
    T* d_gate = grad_gate_up + row * 2 * inter;
    T* d_up = d_gate + inter;
    for (int64_t j = threadIdx.x; j < inter; j += kThreads) {
      const float a = to_float(gate[j]), u = to_float(up[j]), g = to_float(gr[j]);
      const float e = expf(-a);
      const float sig = 1.f / (1.f + e);
      const float silu = round_to<T>(a / (1.f + e));
      d_gate[j] = from_float<T>(g * u * sig * (1.f + a * (1.f - sig)));
      d_up[j] = from_float<T>(g * silu);
    }
  }
}

// ---- dispatch ----------------------------------------------------------------------------------

template <class T>
struct Tag {
  using type = T;
};

// Calls launch(Tag<T>{}) with T the storage type of dtype.
template <class F>
void dispatch(DType dtype, F&& launch) {
  switch (dtype) {
    case DType::F32: launch(Tag<float>{}); break;
    case DType::BF16: launch(Tag<__nv_bfloat16>{}); break;
    case DType::F16: launch(Tag<__half>{}); break;
  }
}

}  // namespace

void launch_rms_norm_forward(const void* x, DType dtype, int64_t rows, int64_t hidden, int64_t x_row_stride,
                             const void* weight, float eps, void* y, float* rstd, void* stream) {
  if (rows == 0 || hidden == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    rms_norm_forward_kernel<T><<<grid_for(rows), kThreads, 0, s>>>(static_cast<const T*>(x), rows, hidden,
                                                                   x_row_stride, static_cast<const T*>(weight), eps,
                                                                   static_cast<T*>(y), rstd);
  });
}

void launch_rms_norm_backward(const void* x, DType dtype, int64_t rows, int64_t hidden, int64_t x_row_stride,
                              const void* weight, const void* grad, const float* rstd, void* grad_x,
                              float* grad_weight_partial, void* stream) {
  if (rows == 0 || hidden == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  // Exactly rms_norm_backward_blocks(rows) blocks: one per row of the partial buffer.
  const auto blocks = static_cast<unsigned>(rms_norm_backward_blocks(rows));
  dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    rms_norm_backward_kernel<T><<<blocks, kThreads, 0, s>>>(
        static_cast<const T*>(x), rows, hidden, x_row_stride, static_cast<const T*>(weight),
        static_cast<const T*>(grad), rstd, static_cast<T*>(grad_x), grad_weight_partial);
  });
}

void launch_rope_forward(const void* x, DType dtype, int64_t batch, int64_t seq, int64_t heads, int64_t head_dim,
                         int64_t stride_b, int64_t stride_t, int64_t stride_h, const float* cos, const float* sin,
                         void* y, void* stream) {
  const int64_t tokens = batch * seq;
  if (tokens == 0 || heads == 0 || head_dim == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    rope_kernel<T, false><<<grid_for(tokens), kThreads, 0, s>>>(
        static_cast<const T*>(x), tokens, seq, static_cast<int>(heads), static_cast<int>(head_dim / 2), stride_b,
        stride_t, stride_h, cos, sin, static_cast<T*>(y));
  });
}

void launch_rope_backward(const void* grad, DType dtype, int64_t batch, int64_t seq, int64_t heads, int64_t head_dim,
                          const float* cos, const float* sin, void* grad_x, void* stream) {
  const int64_t tokens = batch * seq;
  if (tokens == 0 || heads == 0 || head_dim == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    rope_kernel<T, true><<<grid_for(tokens), kThreads, 0, s>>>(
        static_cast<const T*>(grad), tokens, seq, static_cast<int>(heads), static_cast<int>(head_dim / 2),
        seq * heads * head_dim, heads * head_dim, head_dim, cos, sin, static_cast<T*>(grad_x));
  });
}

void launch_swiglu_forward(const void* gate_up, DType dtype, int64_t rows, int64_t inter, void* y, void* stream) {
  if (rows == 0 || inter == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    swiglu_forward_kernel<T><<<grid_for(rows), kThreads, 0, s>>>(static_cast<const T*>(gate_up), rows, inter,
                                                                 static_cast<T*>(y));
  });
}

void launch_swiglu_backward(const void* gate_up, const void* grad, DType dtype, int64_t rows, int64_t inter,
                            void* grad_gate_up, void* stream) {
  if (rows == 0 || inter == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    swiglu_backward_kernel<T><<<grid_for(rows), kThreads, 0, s>>>(
        static_cast<const T*>(gate_up), static_cast<const T*>(grad), rows, inter, static_cast<T*>(grad_gate_up));
  });
}

}  // namespace mathrl::kernels::cuda
