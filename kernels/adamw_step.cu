#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "adamw_step_cuda.h"
#include "cuda_dtype.cuh"

namespace mathrl::kernels::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 2048;  // grid-stride beyond: ~16 resident blocks per SM of an H100

// Four consecutive elements of T as floats; 16-bit types move as one 8-byte word.
template <class T>
struct Four {
  static __device__ __forceinline__ float4 load(const T* p) {
    const uint2 raw = *reinterpret_cast<const uint2*>(p);
    const T* h = reinterpret_cast<const T*>(&raw);
    return make_float4(to_float(h[0]), to_float(h[1]), to_float(h[2]), to_float(h[3]));
  }
  static __device__ __forceinline__ void store(T* p, float4 v) {
    uint2 raw;
    T* h = reinterpret_cast<T*>(&raw);
    h[0] = from_float<T>(v.x), h[1] = from_float<T>(v.y), h[2] = from_float<T>(v.z), h[3] = from_float<T>(v.w);
    *reinterpret_cast<uint2*>(p) = raw;
  }
};
template <>
struct Four<float> {
  static __device__ __forceinline__ float4 load(const float* p) { return *reinterpret_cast<const float4*>(p); }
  static __device__ __forceinline__ void store(float* p, float4 v) { *reinterpret_cast<float4*>(p) = v; }
};

// ATen's fused AdamW formula (decoupled decay first, then the moment updates and the step).
__device__ __forceinline__ void adamw_one(float& p, float g, float& m, float& v, const AdamWScalars& s) {
  g *= s.grad_scale;
  p *= s.decay;
  m = s.beta1 * m + (1.f - s.beta1) * g;
  v = s.beta2 * v + (1.f - s.beta2) * g * g;
  const float denom = sqrtf(v) / s.bias2_sqrt + s.eps;
  p -= s.step_size * m / denom;
}

template <class G, class P, bool kVector>
__global__ void __launch_bounds__(kThreads)
    adamw_step_kernel(float* __restrict__ master, const G* __restrict__ grad, float* __restrict__ exp_avg,
                      float* __restrict__ exp_avg_sq, P* __restrict__ param, int64_t n, AdamWScalars s) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  if constexpr (kVector) {
    for (int64_t i = (static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x) * 4; i < n; i += stride * 4) {
      float4 p = Four<float>::load(master + i), m = Four<float>::load(exp_avg + i);
      float4 v = Four<float>::load(exp_avg_sq + i);
      const float4 g = Four<G>::load(grad + i);
      adamw_one(p.x, g.x, m.x, v.x, s);
      adamw_one(p.y, g.y, m.y, v.y, s);
      adamw_one(p.z, g.z, m.z, v.z, s);
      adamw_one(p.w, g.w, m.w, v.w, s);
      Four<float>::store(master + i, p), Four<float>::store(exp_avg + i, m), Four<float>::store(exp_avg_sq + i, v);
      if (param) Four<P>::store(param + i, p);
    }
  } else {
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < n; i += stride) {
      float p = master[i], m = exp_avg[i], v = exp_avg_sq[i];
      adamw_one(p, to_float(grad[i]), m, v, s);
      master[i] = p, exp_avg[i] = m, exp_avg_sq[i] = v;
      if (param) param[i] = from_float<P>(p);
    }
  }
}

}  // namespace

void launch_adamw_step(float* master, const void* grad, DType grad_dtype, float* exp_avg, float* exp_avg_sq,
                       void* param, DType param_dtype, int64_t n, const AdamWScalars& s, void* stream) {
  if (n == 0) return;
  auto st = static_cast<cudaStream_t>(stream);
  auto width = [](DType t) -> uintptr_t { return t == DType::F32 ? 16 : 8; };  // bytes of four elements
  const bool vector = n % 4 == 0 && aligned_to(master, 16) && aligned_to(exp_avg, 16) && aligned_to(exp_avg_sq, 16) &&
                      aligned_to(grad, width(grad_dtype)) && aligned_to(param, width(param_dtype));
  const int64_t items = vector ? n / 4 : n;
  const int64_t want = (items + kThreads - 1) / kThreads;
  const auto blocks = static_cast<unsigned>(want < kMaxBlocks ? want : kMaxBlocks);
  dispatch(grad_dtype, [&](auto g_tag) {
    using G = typename decltype(g_tag)::type;
    dispatch(param_dtype, [&](auto p_tag) {
      using P = typename decltype(p_tag)::type;
      auto* g = static_cast<const G*>(grad);
      auto* p = static_cast<P*>(param);
      if (vector) adamw_step_kernel<G, P, true><<<blocks, kThreads, 0, st>>>(master, g, exp_avg, exp_avg_sq, p, n, s);
      else adamw_step_kernel<G, P, false><<<blocks, kThreads, 0, st>>>(master, g, exp_avg, exp_avg_sq, p, n, s);
    });
  });
}

}  // namespace mathrl::kernels::cuda
