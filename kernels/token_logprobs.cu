#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "cuda_dtype.cuh"
#include "token_logprobs_cuda.h"

namespace mathrl::kernels::cuda {

namespace {

constexpr int kThreads = 256;

// Merges two (max, sum of exp(x - max), sum of exp(x - max) * x) triples.
struct Online {
  float m, s, sx;
};
__device__ __forceinline__ Online merge(Online a, Online b) {
  if (a.m == -INFINITY) return b;
  if (b.m == -INFINITY) return a;
  float m = fmaxf(a.m, b.m);
  float ea = __expf(a.m - m), eb = __expf(b.m - m);
  return {m, a.s * ea + b.s * eb, a.sx * ea + b.sx * eb};
}

template <class T>
__global__ void logsumexp_gather_kernel(const T* __restrict__ logits, int64_t vocab, int64_t row_stride,
                                        const int64_t* __restrict__ targets, float inv_t, float* __restrict__ lse,
                                        float* __restrict__ target_logit, float* __restrict__ entropy) {
  const int64_t row = blockIdx.x;
  const T* x = logits + row * row_stride;
  Online acc{-INFINITY, 0.f, 0.f};
  for (int64_t j = threadIdx.x; j < vocab; j += kThreads) {
    float v = to_float(x[j]) * inv_t;
    acc = merge(acc, Online{v, 1.f, v});
  }
  // Warp reduction, then across warps through shared memory.
  for (int offset = 16; offset > 0; offset >>= 1) {
    Online o{__shfl_down_sync(0xffffffff, acc.m, offset), __shfl_down_sync(0xffffffff, acc.s, offset),
             __shfl_down_sync(0xffffffff, acc.sx, offset)};
    acc = merge(acc, o);
  }
  __shared__ Online partial[kThreads / 32];
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) partial[warp] = acc;
  __syncthreads();
  if (threadIdx.x == 0) {
    Online total = partial[0];
    for (int w = 1; w < kThreads / 32; ++w) total = merge(total, partial[w]);
    float log_z = total.m + logf(total.s);
    lse[row] = log_z;
    target_logit[row] = to_float(x[targets[row]]) * inv_t;
    // H = log Z - E[x] where E[x] = sum(exp(x - m) x) / sum(exp(x - m)).
    if (entropy) entropy[row] = log_z - total.sx / total.s;
  }
}

template <class T>
__global__ void logprob_grad_kernel(T* __restrict__ logits, int64_t vocab, int64_t row_stride,
                                    const int64_t* __restrict__ targets, const float* __restrict__ lse,
                                    const float* __restrict__ grad, float inv_t) {
  const int64_t row = blockIdx.x;
  T* x = logits + row * row_stride;
  const float g = grad[row] * inv_t, z = lse[row];
  const int64_t t = targets[row];
  for (int64_t j = threadIdx.x; j < vocab; j += kThreads) {
    float p = __expf(to_float(x[j]) * inv_t - z);
    x[j] = from_float<T>(g * ((j == t ? 1.f : 0.f) - p));
  }
}

}  // namespace

void launch_logsumexp_gather(const void* logits, DType dtype, int64_t rows, int64_t vocab, int64_t row_stride,
                             const int64_t* targets, float inv_t, float* lse, float* target_logit, float* entropy,
                             void* stream) {
  if (rows == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  switch (dtype) {
    case DType::F32:
      logsumexp_gather_kernel<float><<<rows, kThreads, 0, s>>>(static_cast<const float*>(logits), vocab, row_stride,
                                                               targets, inv_t, lse, target_logit, entropy);
      break;
    case DType::BF16:
      logsumexp_gather_kernel<__nv_bfloat16><<<rows, kThreads, 0, s>>>(
          static_cast<const __nv_bfloat16*>(logits), vocab, row_stride, targets, inv_t, lse, target_logit, entropy);
      break;
    case DType::F16:
      logsumexp_gather_kernel<__half><<<rows, kThreads, 0, s>>>(static_cast<const __half*>(logits), vocab, row_stride,
                                                                targets, inv_t, lse, target_logit, entropy);
      break;
  }
}

void launch_logprob_grad(void* logits, DType dtype, int64_t rows, int64_t vocab, int64_t row_stride,
                         const int64_t* targets, const float* lse, const float* grad, float inv_t, void* stream) {
  if (rows == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  switch (dtype) {
    case DType::F32:
      logprob_grad_kernel<float><<<rows, kThreads, 0, s>>>(static_cast<float*>(logits), vocab, row_stride, targets,
                                                           lse, grad, inv_t);
      break;
    case DType::BF16:
      logprob_grad_kernel<__nv_bfloat16><<<rows, kThreads, 0, s>>>(static_cast<__nv_bfloat16*>(logits), vocab,
                                                                   row_stride, targets, lse, grad, inv_t);
      break;
    case DType::F16:
      logprob_grad_kernel<__half><<<rows, kThreads, 0, s>>>(static_cast<__half*>(logits), vocab, row_stride, targets,
                                                            lse, grad, inv_t);
      break;
  }
}

const char* last_error() {
  cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? nullptr : cudaGetErrorString(e);
}

}  // namespace mathrl::kernels::cuda
