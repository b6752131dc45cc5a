#include <cstdint>
#include <initializer_list>
#include <type_traits>

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

// kN consecutive elements of T moved as one 16-byte word (8 bf16/fp16, 4 float32); the vector
// kernels below take rows whose length, stride and base are multiples of it.
template <class T>
struct Pack {
  static constexpr int kN = 16 / static_cast<int>(sizeof(T));
  uint4 raw;
  __device__ __forceinline__ float get(int i) const { return to_float(reinterpret_cast<const T*>(&raw)[i]); }
  __device__ __forceinline__ void set(int i, float v) { reinterpret_cast<T*>(&raw)[i] = from_float<T>(v); }
};
template <class T>
__device__ __forceinline__ Pack<T> load_pack(const T* p) {
  Pack<T> k;
  k.raw = *reinterpret_cast<const uint4*>(p);
  return k;
}
template <class T>
__device__ __forceinline__ void store_pack(T* p, const Pack<T>& k) {
  *reinterpret_cast<uint4*>(p) = k.raw;
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

// The same two kernels on packs: thread i holds packs i, i + kThreads, ... (C of them) of its row in
// registers, so x and grad are read once per row and the backward's dweight sums stay in registers
// (the block's columns are the same in every row) until one store at the end.
template <class T, int C>
__global__ void __launch_bounds__(kThreads)
    rms_norm_forward_vec_kernel(const T* __restrict__ x, int64_t rows, int64_t hidden, int64_t x_row_stride,
                                const T* __restrict__ weight, float eps, T* __restrict__ y, float* __restrict__ rstd) {
  constexpr int N = Pack<T>::kN;
  __shared__ float scratch[kThreads / 32];
  const int64_t packs = hidden / N;
  const float inv_hidden = 1.f / static_cast<float>(hidden);
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * x_row_stride;
    Pack<T> xv[C];
    float sum_sq = 0.f;
#pragma unroll
    for (int c = 0; c < C; ++c) {
      const int64_t j = threadIdx.x + c * kThreads;
      if (j < packs) {
        xv[c] = load_pack(xr + j * N);
#pragma unroll
        for (int e = 0; e < N; ++e) sum_sq += xv[c].get(e) * xv[c].get(e);
      }
    }
    const float r = rsqrtf(block_sum(sum_sq, scratch) * inv_hidden + eps);
    T* yr = y + row * hidden;
#pragma unroll
    for (int c = 0; c < C; ++c) {
      const int64_t j = threadIdx.x + c * kThreads;
      if (j < packs) {
        const Pack<T> w = load_pack(weight + j * N);
        Pack<T> out;
#pragma unroll
        for (int e = 0; e < N; ++e) out.set(e, w.get(e) * round_to<T>(xv[c].get(e) * r));
        store_pack(yr + j * N, out);
      }
    }
    if (threadIdx.x == 0) rstd[row] = r;
  }
}

template <class T, int C>
__global__ void __launch_bounds__(kThreads)
    rms_norm_backward_vec_kernel(const T* __restrict__ x, int64_t rows, int64_t hidden, int64_t x_row_stride,
                                 const T* __restrict__ weight, const T* __restrict__ grad,
                                 const float* __restrict__ rstd, T* __restrict__ grad_x, float* __restrict__ partial) {
  constexpr int N = Pack<T>::kN;
  __shared__ float scratch[kThreads / 32];
  const int64_t packs = hidden / N;
  const float inv_hidden = 1.f / static_cast<float>(hidden);
  Pack<T> wv[C];
  float acc[C][N];
#pragma unroll
  for (int c = 0; c < C; ++c) {
    const int64_t j = threadIdx.x + c * kThreads;
    if (j < packs) wv[c] = load_pack(weight + j * N);
#pragma unroll
    for (int e = 0; e < N; ++e) acc[c][e] = 0.f;
  }
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * x_row_stride;
    const T* gr = grad + row * hidden;
    const float r = rstd[row];
    Pack<T> xv[C], gv[C];
    float dot = 0.f;
#pragma unroll
    for (int c = 0; c < C; ++c) {
      const int64_t j = threadIdx.x + c * kThreads;
      if (j < packs) {
        xv[c] = load_pack(xr + j * N);
        gv[c] = load_pack(gr + j * N);
#pragma unroll
        for (int e = 0; e < N; ++e) dot += gv[c].get(e) * wv[c].get(e) * (xv[c].get(e) * r);
      }
    }
    const float mean = block_sum(dot, scratch) * inv_hidden;
    T* dxr = grad_x + row * hidden;
#pragma unroll
    for (int c = 0; c < C; ++c) {
      const int64_t j = threadIdx.x + c * kThreads;
      if (j < packs) {
        Pack<T> dx;
#pragma unroll
        for (int e = 0; e < N; ++e) {
          const float g = gv[c].get(e), n = xv[c].get(e) * r;
          dx.set(e, r * (g * wv[c].get(e) - n * mean));
          acc[c][e] += g * round_to<T>(n);
        }
        store_pack(dxr + j * N, dx);
      }
    }
  }
  if (!partial) return;
  float* out = partial + static_cast<int64_t>(blockIdx.x) * hidden;
#pragma unroll
  for (int c = 0; c < C; ++c) {
    const int64_t j = threadIdx.x + c * kThreads;
    if (j < packs)
#pragma unroll
      for (int e = 0; e < N; ++e) out[j * N + e] = acc[c][e];
  }
}

// Packs per thread of the vector RMSNorm kernels for a row of `hidden`, or 0 when they do not apply
// (a row that is not whole packs, misaligned pointers, or more than 4 packs per thread).
template <class T>
int rms_norm_packs_per_thread(int64_t hidden, int64_t x_row_stride, std::initializer_list<const void*> pointers) {
  constexpr int N = Pack<T>::kN;
  if (hidden % N != 0 || x_row_stride % N != 0) return 0;
  for (const void* p : pointers)
    if (!aligned_to(p, 16)) return 0;
  const int64_t c = (hidden / N + kThreads - 1) / kThreads;
  return c <= 4 ? static_cast<int>(c) : 0;
}

// Calls f(std::integral_constant<int, C>{}) for C = packs in 1..4 (the vector RMSNorm kernels'
// instantiations) and returns true; false for any other count.
template <class F>
bool with_packs_per_thread(int packs, F&& f) {
  switch (packs) {
    case 1: f(std::integral_constant<int, 1>{}); return true;
    case 2: f(std::integral_constant<int, 2>{}); return true;
    case 3: f(std::integral_constant<int, 3>{}); return true;
    case 4: f(std::integral_constant<int, 4>{}); return true;
    default: return false;
  }
}

// ---- RoPE --------------------------------------------------------------------------------------

// One rotated pair: forward y1 = x1*c1 - x2*s1, y2 = x2*c2 + x1*s2; backward (the transpose)
// dx1 = g1*c1 + g2*s2, dx2 = g2*c2 - g1*s1. c/s are the float32 tables as the reference's
// .to(x.dtype) leaves them.
template <class T, bool kBackward>
__device__ __forceinline__ void rope_rotate(float v1, float v2, float cos1, float cos2, float sin1, float sin2,
                                            float& y1, float& y2) {
  const float c1 = round_to<T>(cos1), c2 = round_to<T>(cos2), s1 = round_to<T>(sin1), s2 = round_to<T>(sin2);
  if constexpr (kBackward) {
    y1 = v1 * c1 + v2 * s2;
    y2 = v2 * c2 - v1 * s1;
  } else {
    // Each product and the sum rounded to T, like the reference's separate mul, mul and add
    // kernels; the _rn intrinsics keep nvcc from contracting them into an FMA (float32 differs).
    y1 = __fadd_rn(round_to<T>(__fmul_rn(v1, c1)), round_to<T>(__fmul_rn(-v2, s1)));
    y2 = __fadd_rn(round_to<T>(__fmul_rn(v2, c2)), round_to<T>(__fmul_rn(v1, s2)));
  }
}

// One block per (b, t) position (grid-stride); thread p handles the pair (k, k + half) of head
// p / half, so the cos/sin of a position are read once per block from L1 and nothing needs int64
// division per element.
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
      float y1, y2;
      rope_rotate<T, kBackward>(to_float(src[k]), to_float(src[k + half]), cos_bt[k], cos_bt[k + half], sin_bt[k],
                                sin_bt[k + half], y1, y2);
      dst[k] = from_float<T>(y1);
      dst[k + half] = from_float<T>(y2);
    }
  }
}

// ---- SwiGLU ------------------------------------------------------------------------------------

// silu(a) * u with silu as ATen computes it, a / (1 + exp(-a)), rounded to T before the product
// like the reference's silu tensor; and its gradients d_gate = g * u * sig * (1 + a * (1 - sig)),
// d_up = g * round(silu(a)).
template <class T>
__device__ __forceinline__ float swiglu_value(float a, float u) {
  return round_to<T>(a / (1.f + expf(-a))) * u;
}
template <class T>
__device__ __forceinline__ void swiglu_grads(float a, float u, float g, float& d_gate, float& d_up) {
  const float e = expf(-a);
  const float sig = 1.f / (1.f + e);
  d_gate = g * u * sig * (1.f + a * (1.f - sig));
  d_up = g * round_to<T>(a / (1.f + e));
}

// One block per row (grid-stride).
template <class T>
__global__ void __launch_bounds__(kThreads)
    swiglu_forward_kernel(const T* __restrict__ gate_up, int64_t rows, int64_t inter, T* __restrict__ y) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* gate = gate_up + row * 2 * inter;
    const T* up = gate + inter;
    T* yr = y + row * inter;
    for (int64_t j = threadIdx.x; j < inter; j += kThreads)
      yr[j] = from_float<T>(swiglu_value<T>(to_float(gate[j]), to_float(up[j])));
  }
}

// Gradients of both halves into one [rows, 2I] output.
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
      float dg, du;
      swiglu_grads<T>(to_float(gate[j]), to_float(up[j]), to_float(gr[j]), dg, du);
      d_gate[j] = from_float<T>(dg);
      d_up[j] = from_float<T>(du);
    }
  }
}

// RoPE on packs: thread q handles pack (q % packs_per_half) of the first half of head
// q / packs_per_half and the matching pack of the second half; arithmetic as rope_kernel's.
template <class T, bool kBackward>
__global__ void __launch_bounds__(kThreads)
    rope_vec_kernel(const T* __restrict__ in, int64_t tokens, int64_t seq, int heads, int half, int64_t stride_b,
                    int64_t stride_t, int64_t stride_h, const float* __restrict__ cos, const float* __restrict__ sin,
                    T* __restrict__ out) {
  constexpr int N = Pack<T>::kN;
  const int head_dim = 2 * half, per_half = half / N, items = heads * per_half;
  for (int64_t bt = blockIdx.x; bt < tokens; bt += gridDim.x) {
    const int64_t b = bt / seq, t = bt - b * seq;
    const T* in_bt = in + b * stride_b + t * stride_t;
    T* out_bt = out + bt * heads * head_dim;
    const float* cos_bt = cos + bt * head_dim;
    const float* sin_bt = sin + bt * head_dim;
    for (int q = threadIdx.x; q < items; q += kThreads) {
      const int h = q / per_half, k = (q - h * per_half) * N;
      const T* src = in_bt + h * stride_h;
      T* dst = out_bt + static_cast<int64_t>(h) * head_dim;
      const Pack<T> x1 = load_pack(src + k), x2 = load_pack(src + k + half);
      Pack<T> y1, y2;
#pragma unroll
      for (int e = 0; e < N; ++e) {
        float first, second;
        rope_rotate<T, kBackward>(x1.get(e), x2.get(e), cos_bt[k + e], cos_bt[k + half + e], sin_bt[k + e],
                                  sin_bt[k + half + e], first, second);
        y1.set(e, first);
        y2.set(e, second);
      }
      store_pack(dst + k, y1);
      store_pack(dst + k + half, y2);
    }
  }
}

// SwiGLU on packs; arithmetic as the scalar kernels'.
template <class T>
__global__ void __launch_bounds__(kThreads)
    swiglu_forward_vec_kernel(const T* __restrict__ gate_up, int64_t rows, int64_t inter, T* __restrict__ y) {
  constexpr int N = Pack<T>::kN;
  const int64_t packs = inter / N;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* gate = gate_up + row * 2 * inter;
    const T* up = gate + inter;
    T* yr = y + row * inter;
    for (int64_t j = threadIdx.x; j < packs; j += kThreads) {
      const Pack<T> a = load_pack(gate + j * N), u = load_pack(up + j * N);
      Pack<T> out;
#pragma unroll
      for (int e = 0; e < N; ++e) out.set(e, swiglu_value<T>(a.get(e), u.get(e)));
      store_pack(yr + j * N, out);
    }
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    swiglu_backward_vec_kernel(const T* __restrict__ gate_up, const T* __restrict__ grad, int64_t rows, int64_t inter,
                               T* __restrict__ grad_gate_up) {
  constexpr int N = Pack<T>::kN;
  const int64_t packs = inter / N;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* gate = gate_up + row * 2 * inter;
    const T* up = gate + inter;
    const T* gr = grad + row * inter;
    T* d_gate = grad_gate_up + row * 2 * inter;
    T* d_up = d_gate + inter;
    for (int64_t j = threadIdx.x; j < packs; j += kThreads) {
      const Pack<T> a = load_pack(gate + j * N), u = load_pack(up + j * N), g = load_pack(gr + j * N);
      Pack<T> dg, du;
#pragma unroll
      for (int e = 0; e < N; ++e) {
        float gate_grad, up_grad;
        swiglu_grads<T>(a.get(e), u.get(e), g.get(e), gate_grad, up_grad);
        dg.set(e, gate_grad);
        du.set(e, up_grad);
      }
      store_pack(d_gate + j * N, dg);
      store_pack(d_up + j * N, du);
    }
  }
}

// Whether rope_vec_kernel applies: whole packs in each half of a head, strides in whole packs and
// every base pointer 16-byte aligned (cos/sin rows are head_dim floats, so whole float4s too).
template <class T>
bool rope_vectorizable(int64_t head_dim, std::initializer_list<int64_t> strides, std::initializer_list<const void*> ptrs) {
  constexpr int N = Pack<T>::kN;
  if ((head_dim / 2) % N != 0 || head_dim % 4 != 0) return false;
  for (int64_t st : strides)
    if (st % N != 0) return false;
  for (const void* p : ptrs)
    if (!aligned_to(p, 16)) return false;
  return true;
}

}  // namespace

void launch_rms_norm_forward(const void* x, DType dtype, int64_t rows, int64_t hidden, int64_t x_row_stride,
                             const void* weight, float eps, void* y, float* rstd, void* stream) {
  if (rows == 0 || hidden == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    auto* xt = static_cast<const T*>(x);
    auto* wt = static_cast<const T*>(weight);
    auto* yt = static_cast<T*>(y);
    const unsigned grid = grid_for(rows);
    const bool vec = with_packs_per_thread(rms_norm_packs_per_thread<T>(hidden, x_row_stride, {x, weight, y}), [&](auto c) {
      rms_norm_forward_vec_kernel<T, decltype(c)::value>
          <<<grid, kThreads, 0, s>>>(xt, rows, hidden, x_row_stride, wt, eps, yt, rstd);
    });
    if (!vec) rms_norm_forward_kernel<T><<<grid, kThreads, 0, s>>>(xt, rows, hidden, x_row_stride, wt, eps, yt, rstd);
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
    auto* xt = static_cast<const T*>(x);
    auto* wt = static_cast<const T*>(weight);
    auto* gt = static_cast<const T*>(grad);
    auto* dxt = static_cast<T*>(grad_x);
    float* part = grad_weight_partial;
    const int packs = rms_norm_packs_per_thread<T>(hidden, x_row_stride, {x, weight, grad, grad_x});
    const bool vec = with_packs_per_thread(packs, [&](auto c) {
      rms_norm_backward_vec_kernel<T, decltype(c)::value>
          <<<blocks, kThreads, 0, s>>>(xt, rows, hidden, x_row_stride, wt, gt, rstd, dxt, part);
    });
    if (!vec) rms_norm_backward_kernel<T><<<blocks, kThreads, 0, s>>>(xt, rows, hidden, x_row_stride, wt, gt, rstd, dxt, part);
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
    const bool vec = rope_vectorizable<T>(head_dim, {stride_b, stride_t, stride_h}, {x, y, cos, sin});
    auto kernel = vec ? rope_vec_kernel<T, false> : rope_kernel<T, false>;
    kernel<<<grid_for(tokens), kThreads, 0, s>>>(static_cast<const T*>(x), tokens, seq, static_cast<int>(heads),
                                                static_cast<int>(head_dim / 2), stride_b, stride_t, stride_h, cos, sin,
                                                static_cast<T*>(y));
  });
}

void launch_rope_backward(const void* grad, DType dtype, int64_t batch, int64_t seq, int64_t heads, int64_t head_dim,
                          const float* cos, const float* sin, void* grad_x, void* stream) {
  const int64_t tokens = batch * seq;
  if (tokens == 0 || heads == 0 || head_dim == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const bool vec = rope_vectorizable<T>(head_dim, {heads * head_dim}, {grad, grad_x, cos, sin});
    auto kernel = vec ? rope_vec_kernel<T, true> : rope_kernel<T, true>;
    kernel<<<grid_for(tokens), kThreads, 0, s>>>(static_cast<const T*>(grad), tokens, seq, static_cast<int>(heads),
                                                static_cast<int>(head_dim / 2), seq * heads * head_dim,
                                                heads * head_dim, head_dim, cos, sin, static_cast<T*>(grad_x));
  });
}

void launch_swiglu_forward(const void* gate_up, DType dtype, int64_t rows, int64_t inter, void* y, void* stream) {
  if (rows == 0 || inter == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const bool vec = inter % Pack<T>::kN == 0 && aligned_to(gate_up, 16) && aligned_to(y, 16);
    auto kernel = vec ? swiglu_forward_vec_kernel<T> : swiglu_forward_kernel<T>;
    kernel<<<grid_for(rows), kThreads, 0, s>>>(static_cast<const T*>(gate_up), rows, inter, static_cast<T*>(y));
  });
}

void launch_swiglu_backward(const void* gate_up, const void* grad, DType dtype, int64_t rows, int64_t inter,
                            void* grad_gate_up, void* stream) {
  if (rows == 0 || inter == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const bool vec = inter % Pack<T>::kN == 0 && aligned_to(gate_up, 16) && aligned_to(grad, 16) && aligned_to(grad_gate_up, 16);
    auto kernel = vec ? swiglu_backward_vec_kernel<T> : swiglu_backward_kernel<T>;
    kernel<<<grid_for(rows), kThreads, 0, s>>>(static_cast<const T*>(gate_up), static_cast<const T*>(grad), rows,
                                                inter, static_cast<T*>(grad_gate_up));
  });
}

}  // namespace mathrl::kernels::cuda
