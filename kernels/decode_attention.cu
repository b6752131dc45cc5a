// Decode attention over a slot-indexed KV cache, flash-decoding style: the positions of each
// sequence are cut into chunks of kChunk; one block per (sequence, KV head, chunk) scores all the
// query heads of the KV head's group against the chunk's keys read in place, and keeps (max, sum,
// weighted values) partials; a second kernel merges the chunks. The grid covers the cache's whole
// length and blocks past a sequence's position exit at once, so no host-side maximum is needed:
// the launch sequence has no host synchronization and can be captured in a CUDA graph.
#include <cuda_runtime.h>

#include "cuda_dtype.cuh"
#include "decode_attention_cuda.h"

namespace mathrl::kernels::cuda {

namespace {

constexpr int kChunk = 256;
constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffff, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffff, v, o));
  return v;
}

template <class T, int D>
__global__ void __launch_bounds__(kThreads)
decode_attention_partial(const T* __restrict__ q, const T* __restrict__ k_cache, const T* __restrict__ v_cache,
                         const int64_t* __restrict__ slots, const int64_t* __restrict__ positions, int heads,
                         int kv_heads, int64_t max_len, float scale, int splits, float* __restrict__ part_acc,
                         float* __restrict__ part_m, float* __restrict__ part_l) {
  const int b = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z;
  const int group = heads / kv_heads;
  const int h0 = kvh * group;
  int64_t last = positions[b];
  last = last < 0 ? 0 : (last >= max_len ? max_len - 1 : last);  // defensive: never read outside the slot
  const int64_t start = static_cast<int64_t>(split) * kChunk;
  const int64_t left = last + 1 - start;
  const int n = static_cast<int>(left < kChunk ? left : kChunk);
  const int64_t part = (static_cast<int64_t>(b) * heads + h0) * splits + split;  // + g * splits
  if (n <= 0) {
    for (int i = threadIdx.x; i < group * D; i += kThreads) part_acc[(part + (i / D) * splits) * D + i % D] = 0.f;
    if (threadIdx.x < group) {
      part_m[part + threadIdx.x * splits] = -INFINITY;
      part_l[part + threadIdx.x * splits] = 0.f;
    }
    return;
  }
  __shared__ float qs[kMaxDecodeGroup][D];
  __shared__ float probs[kMaxDecodeGroup][kChunk];
  __shared__ float reduce[kThreads / D > 1 ? kThreads / D : 1][kMaxDecodeGroup][D];
  const T* qb = q + (static_cast<int64_t>(b) * heads + h0) * D;
  for (int i = threadIdx.x; i < group * D; i += kThreads) qs[i / D][i % D] = to_float(qb[i]) * scale;
  __syncthreads();

  const int64_t slot_offset = (slots[b] * kv_heads + kvh) * max_len * D;
  const T* K = k_cache + slot_offset + start * D;
  const T* V = v_cache + slot_offset + start * D;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  // Scores: a thread per position; its key row comes in 16-byte loads and meets every query head of
  // the group (broadcast reads of qs), so no cross-lane reduction is needed.
  constexpr int kVec = 16 / sizeof(T);
  static_assert(D % kVec == 0, "head_dim must be a multiple of the vector width");
  for (int t = threadIdx.x; t < n; t += kThreads) {
    float s[kMaxDecodeGroup];
#pragma unroll
    for (int g = 0; g < kMaxDecodeGroup; ++g) s[g] = 0.f;
    const uint4* row = reinterpret_cast<const uint4*>(K + static_cast<int64_t>(t) * D);
#pragma unroll 4
    for (int c = 0; c < D / kVec; ++c) {
      uint4 raw = row[c];
      const T* k = reinterpret_cast<const T*>(&raw);
#pragma unroll
      for (int i = 0; i < kVec; ++i) {
        const float kv = to_float(k[i]);
        const int d = c * kVec + i;
#pragma unroll
        for (int g = 0; g < kMaxDecodeGroup; ++g)
          if (g < group) s[g] += qs[g][d] * kv;
      }
    }
#pragma unroll
    for (int g = 0; g < kMaxDecodeGroup; ++g)
      if (g < group) probs[g][t] = s[g];
  }
  __syncthreads();
  // Softmax statistics of the chunk, a warp per query head.
  for (int g = warp; g < group; g += kWarps) {
    float m = -INFINITY;
    for (int j = lane; j < n; j += 32) m = fmaxf(m, probs[g][j]);
    m = warp_max(m);
    float l = 0.f;
    for (int j = lane; j < n; j += 32) {
      float p = __expf(probs[g][j] - m);
      probs[g][j] = p;
      l += p;
    }
    l = warp_sum(l);
    if (lane == 0) {
      part_m[part + g * splits] = m;
      part_l[part + g * splits] = l;
    }
  }
  __syncthreads();
  // Weighted values: threads over (dimension, a stride of positions), then summed across strides.
  constexpr int kStrides = kThreads / D > 1 ? kThreads / D : 1;
  const int d = threadIdx.x % D, stride = threadIdx.x / D;
  if (stride < kStrides) {
    float acc[kMaxDecodeGroup];
#pragma unroll
    for (int g = 0; g < kMaxDecodeGroup; ++g) acc[g] = 0.f;
    for (int j = stride; j < n; j += kStrides) {
      float v = to_float(V[static_cast<int64_t>(j) * D + d]);
#pragma unroll
      for (int g = 0; g < kMaxDecodeGroup; ++g)
        if (g < group) acc[g] += probs[g][j] * v;
    }
#pragma unroll
    for (int g = 0; g < kMaxDecodeGroup; ++g)
      if (g < group) reduce[stride][g][d] = acc[g];
  }
  __syncthreads();
  for (int i = threadIdx.x; i < group * D; i += kThreads) {
    const int g = i / D, dd = i % D;
    float s = 0.f;
    for (int r = 0; r < kStrides; ++r) s += reduce[r][g][dd];
    part_acc[(part + g * splits) * D + dd] = s;
  }
}

// One block per (sequence, query head): merges the chunks' partials into the output row.
template <class T>
__global__ void decode_attention_merge(const float* __restrict__ part_acc, const float* __restrict__ part_m,
                                       const float* __restrict__ part_l, int splits, int dim, T* __restrict__ out) {
  const int64_t row = blockIdx.x;  // b * heads + h
  const float* m = part_m + row * splits;
  const float* l = part_l + row * splits;
  float top = -INFINITY;
  for (int s = 0; s < splits; ++s) top = fmaxf(top, m[s]);
  float denom = 0.f;
  for (int s = 0; s < splits; ++s)
    if (m[s] != -INFINITY) denom += __expf(m[s] - top) * l[s];
  for (int d = threadIdx.x; d < dim; d += blockDim.x) {
    float acc = 0.f;
    for (int s = 0; s < splits; ++s)
      if (m[s] != -INFINITY) acc += __expf(m[s] - top) * part_acc[(row * splits + s) * dim + d];
    out[row * dim + d] = from_float<T>(denom > 0.f ? acc / denom : 0.f);
  }
}

template <class T, int D>
void launch_typed(const DecodeAttentionArgs& a, cudaStream_t stream) {
  dim3 grid(a.batch, a.kv_heads, a.splits);
  decode_attention_partial<T, D><<<grid, kThreads, 0, stream>>>(
      static_cast<const T*>(a.q), static_cast<const T*>(a.k_cache), static_cast<const T*>(a.v_cache), a.slots,
      a.positions, a.heads, a.kv_heads, a.max_len, a.scale, a.splits, a.part_acc, a.part_m, a.part_l);
  decode_attention_merge<T><<<a.batch * a.heads, D < 128 ? D : 128, 0, stream>>>(a.part_acc, a.part_m, a.part_l,
                                                                               a.splits, D, static_cast<T*>(a.out));
}

template <class T>
bool launch_dim(const DecodeAttentionArgs& a, cudaStream_t stream) {
  switch (a.head_dim) {
    case 64: launch_typed<T, 64>(a, stream); return true;
    case 128: launch_typed<T, 128>(a, stream); return true;
    default: return false;
  }
}

}  // namespace

int decode_attention_chunk() { return kChunk; }

bool launch_decode_attention(const DecodeAttentionArgs& a, void* stream) {
  auto s = static_cast<cudaStream_t>(stream);
  switch (a.dtype) {
    case DType::F32: return launch_dim<float>(a, s);
    case DType::BF16: return launch_dim<__nv_bfloat16>(a, s);
    case DType::F16: return launch_dim<__half>(a, s);
  }
  return false;
}

}  // namespace mathrl::kernels::cuda
