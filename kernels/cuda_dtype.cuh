// Shared by the CUDA kernels: float conversions (fp32, bf16, fp16 storage; fp32 math), the
// launchers' dispatch from a DType to its storage type, and the alignment test of vector paths.
#pragma once
#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "token_logprobs_cuda.h"  // DType

namespace mathrl::kernels::cuda {

template <class T>
__device__ __forceinline__ float to_float(T v);
template <>
__device__ __forceinline__ float to_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }
template <>
__device__ __forceinline__ float to_float<__half>(__half v) { return __half2float(v); }

template <class T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16(v); }
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half(v); }

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

// True when p is a multiple of `bytes` (a null pointer counts as aligned: nothing is read there).
inline bool aligned_to(const void* p, uintptr_t bytes) {
  return p == nullptr || reinterpret_cast<uintptr_t>(p) % bytes == 0;
}

}  // namespace mathrl::kernels::cuda
