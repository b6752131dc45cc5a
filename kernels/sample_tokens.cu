#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "cuda_dtype.cuh"
#include "sample_tokens_cuda.h"

namespace mathrl::kernels::cuda {

namespace {

constexpr int kWarps = 32;
constexpr int kThreads = kWarps * 32;

// Running (max, sum of exp(x - max), first index of the max) over part of a row.
struct Partial {
  float m, s;
  int64_t idx;
};

__device__ __forceinline__ Partial merge(Partial a, Partial b) {
  if (b.m == -INFINITY) return a;
  if (a.m == -INFINITY) return b;
  float m = fmaxf(a.m, b.m);
  int64_t idx = a.m > b.m ? a.idx : b.m > a.m ? b.idx : (a.idx < b.idx ? a.idx : b.idx);
  return {m, a.s * expf(a.m - m) + b.s * expf(b.m - m), idx};
}

// Warp w owns the contiguous range [w * span, (w + 1) * span) of the row, its lanes reading it in
// coalesced strides; so after pass 1 the per-warp sums locate the drawn token's range, and pass 2
// rescans that one range in order.
template <class T>
__global__ void sample_tokens_kernel(const T* __restrict__ logits, int64_t vocab, int64_t row_stride,
                                     const float* __restrict__ temperature, const float* __restrict__ uniform,
                                     int64_t* __restrict__ tokens, float* __restrict__ logprobs) {
  const int64_t row = blockIdx.x;
  const T* x = logits + row * row_stride;
  const float u = uniform[row];
  const bool greedy = u < 0.f;
  const float inv_t = greedy ? 1.f : 1.f / temperature[row];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t span = (vocab + kWarps - 1) / kWarps;
  const int64_t begin = warp * span, end = begin + span < vocab ? begin + span : vocab;

  // Pass 1: max, first argmax and sum of exp per warp range.
  Partial acc{-INFINITY, 0.f, 0};
  for (int64_t j = begin + lane; j < end; j += 32) {
    float v = to_float(x[j]) * inv_t;
    if (v == -INFINITY) continue;
    if (v > acc.m) {
      acc.s = acc.s * expf(acc.m - v) + 1.f;
      acc.m = v;
      acc.idx = j;
    } else {
      acc.s += expf(v - acc.m);
    }
  }
  for (int offset = 16; offset > 0; offset >>= 1) {
    Partial o{__shfl_down_sync(0xffffffff, acc.m, offset), __shfl_down_sync(0xffffffff, acc.s, offset),
              static_cast<int64_t>(__shfl_down_sync(0xffffffff, static_cast<long long>(acc.idx), offset))};
    acc = merge(acc, o);
  }
  __shared__ float warp_m[kWarps], warp_s[kWarps];
  __shared__ int64_t warp_idx[kWarps];
  __shared__ float row_m, row_log_s, target, base;
  __shared__ int chosen;
  __shared__ int64_t token;
  if (lane == 0) {
    warp_m[warp] = acc.m;
    warp_s[warp] = acc.s;
    warp_idx[warp] = acc.idx;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    Partial total{-INFINITY, 0.f, 0};
    for (int w = 0; w < kWarps; ++w) total = merge(total, Partial{warp_m[w], warp_s[w], warp_idx[w]});
    row_m = total.m;
    row_log_s = logf(total.s);
    chosen = -1;
    token = total.idx;
    if (!greedy) {
      // The reference counts CDF entries <= u: the token is the first whose running sum exceeds u * S.
      float t = u * total.s, c = 0.f;
      token = vocab - 1;  // u at or past the last CDF entry (rounding): the reference clamps to V - 1
      for (int w = 0; w < kWarps; ++w) {
        float cw = warp_m[w] == -INFINITY ? 0.f : warp_s[w] * expf(warp_m[w] - total.m);
        if (c + cw > t) {
          chosen = w;
          break;
        }
        c += cw;
      }
      target = t;
      base = c;
    }
  }
  __syncthreads();

  // Pass 2: the chosen warp scans its range in order, 32 entries at a time.
  if (warp == chosen) {
    const float m = row_m, t = target;
    float running = base;
    int64_t found = end - 1;  // not reached by rounding: the range's last entry
    for (int64_t chunk = begin; chunk < end; chunk += 32) {
      int64_t j = chunk + lane;
      float v = j < end ? to_float(x[j]) * inv_t : -INFINITY;
      float e = v == -INFINITY ? 0.f : expf(v - m);
      float incl = e;
      for (int offset = 1; offset < 32; offset <<= 1) {
        float n = __shfl_up_sync(0xffffffff, incl, offset);
        if (lane >= offset) incl += n;
      }
      unsigned hit = __ballot_sync(0xffffffff, j < end && running + incl > t);
      if (hit) {
        found = chunk + __ffs(hit) - 1;
        break;
      }
      running += __shfl_sync(0xffffffff, incl, 31);
    }
    if (lane == 0) token = found;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    tokens[row] = token;
    logprobs[row] = to_float(x[token]) * inv_t - row_m - row_log_s;
  }
}

}  // namespace

void launch_sample_tokens(const void* logits, DType dtype, int64_t rows, int64_t vocab, int64_t row_stride,
                          const float* temperature, const float* uniform, int64_t* tokens, float* logprobs,
                          void* stream) {
  auto s = static_cast<cudaStream_t>(stream);
  switch (dtype) {
    case DType::F32:
      sample_tokens_kernel<float><<<rows, kThreads, 0, s>>>(static_cast<const float*>(logits), vocab, row_stride,
                                                             temperature, uniform, tokens, logprobs);
      break;
    case DType::BF16:
      sample_tokens_kernel<__nv_bfloat16><<<rows, kThreads, 0, s>>>(static_cast<const __nv_bfloat16*>(logits), vocab,
                                                                     row_stride, temperature, uniform, tokens, logprobs);
      break;
    case DType::F16:
      sample_tokens_kernel<__half><<<rows, kThreads, 0, s>>>(static_cast<const __half*>(logits), vocab, row_stride,
                                                              temperature, uniform, tokens, logprobs);
      break;
  }
}

}  // namespace mathrl::kernels::cuda
