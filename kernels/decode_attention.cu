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

// Lanes split each key row into 16-byte pieces (kLanesPerRow lanes per row, several rows per warp),
// so every K and V byte is read once with a vector load and the query heads of the group stay in
// registers (MAXG: the group size rounded up to a power of two). Scores are summed across a row's
// lanes by shuffles; every loop runs a warp-uniform number of times so all lanes reach them.
template <class T, int D, int MAXG>
__global__ void __launch_bounds__(kThreads)
decode_attention_partial(const T* __restrict__ q, const T* __restrict__ k_cache, const T* __restrict__ v_cache,
                         const int64_t* __restrict__ slots, const int64_t* __restrict__ positions,
                         const int64_t* __restrict__ prefix_slot, const int64_t* __restrict__ prefix_len, int heads,
                         int kv_heads, int64_t max_len, float scale, int splits, float* __restrict__ part_acc,
                         float* __restrict__ part_m, float* __restrict__ part_l) {
  constexpr int kVec = 16 / sizeof(T);
  static_assert(D % kVec == 0 && D / kVec <= 32, "head_dim must be a multiple of the vector width, at most 32 vectors");
  constexpr int kLanesPerRow = D / kVec;
  constexpr int kRowsPerWarp = 32 / kLanesPerRow;
  constexpr int kRowGroups = kWarps * kRowsPerWarp;  // key rows a block reads at once
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
  __shared__ float probs[MAXG][kChunk];
  __shared__ float acc_sum[MAXG][D];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int piece = lane % kLanesPerRow;                            // this lane's 16 bytes of a row
  const int row_slot = warp * kRowsPerWarp + lane / kLanesPerRow;  // which of the block's rows
  for (int i = threadIdx.x; i < MAXG * D; i += kThreads) acc_sum[i / D][i % D] = 0.f;

  float qr[MAXG][kVec];
  const T* qb = q + (static_cast<int64_t>(b) * heads + h0) * D + piece * kVec;
#pragma unroll
  for (int g = 0; g < MAXG; ++g) {
    if (g < group) {
      uint4 raw = *reinterpret_cast<const uint4*>(qb + g * D);
      const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
      for (int i = 0; i < kVec; ++i) qr[g][i] = to_float(e[i]) * scale;
    } else {
#pragma unroll
      for (int i = 0; i < kVec; ++i) qr[g][i] = 0.f;
    }
  }

  // Positions below `shared` come from the prefix's slot (a prompt shared by its samples).
  const int64_t own = (slots[b] * kv_heads + kvh) * max_len * D;
  const int64_t shared = prefix_len ? prefix_len[b] - start : 0;  // relative to the chunk
  const int64_t from_prefix = prefix_slot ? (prefix_slot[b] * kv_heads + kvh) * max_len * D : own;
  const T* K = k_cache + own + start * D + piece * kVec;
  const T* V = v_cache + own + start * D + piece * kVec;
  const T* Kp = k_cache + from_prefix + start * D + piece * kVec;
  const T* Vp = v_cache + from_prefix + start * D + piece * kVec;

  for (int base = 0; base < n; base += kRowGroups) {
    const int t = base + row_slot;
    float s[MAXG];
#pragma unroll
    for (int g = 0; g < MAXG; ++g) s[g] = 0.f;
    if (t < n) {
      uint4 raw = *reinterpret_cast<const uint4*>((t < shared ? Kp : K) + static_cast<int64_t>(t) * D);
      const T* k = reinterpret_cast<const T*>(&raw);
#pragma unroll
      for (int i = 0; i < kVec; ++i) {
        const float kv = to_float(k[i]);
#pragma unroll
        for (int g = 0; g < MAXG; ++g) s[g] += qr[g][i] * kv;
      }
    }
#pragma unroll
    for (int o = kLanesPerRow / 2; o > 0; o >>= 1)
#pragma unroll
      for (int g = 0; g < MAXG; ++g) s[g] += __shfl_xor_sync(0xffffffff, s[g], o);
    if (t < n && piece == 0) {
#pragma unroll
      for (int g = 0; g < MAXG; ++g)
        if (g < group) probs[g][t] = s[g];
    }
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
  // Weighted values: each lane accumulates its 16 bytes of the rows it reads, for every head.
  float acc[MAXG][kVec];
#pragma unroll
  for (int g = 0; g < MAXG; ++g)
#pragma unroll
    for (int i = 0; i < kVec; ++i) acc[g][i] = 0.f;
  for (int j = row_slot; j < n; j += kRowGroups) {
    uint4 raw = *reinterpret_cast<const uint4*>((j < shared ? Vp : V) + static_cast<int64_t>(j) * D);
    const T* v = reinterpret_cast<const T*>(&raw);
#pragma unroll
    for (int g = 0; g < MAXG; ++g) {
      const float p = g < group ? probs[g][j] : 0.f;
#pragma unroll
      for (int i = 0; i < kVec; ++i) acc[g][i] += p * to_float(v[i]);
    }
  }
  // Sum over the rows of a warp (lanes with the same piece), then across warps in shared memory.
#pragma unroll
  for (int o = kLanesPerRow; o < 32; o <<= 1)
#pragma unroll
    for (int g = 0; g < MAXG; ++g)
#pragma unroll
      for (int i = 0; i < kVec; ++i) acc[g][i] += __shfl_xor_sync(0xffffffff, acc[g][i], o);
  if (lane < kLanesPerRow) {
#pragma unroll
    for (int g = 0; g < MAXG; ++g)
      if (g < group)
#pragma unroll
        for (int i = 0; i < kVec; ++i) atomicAdd(&acc_sum[g][piece * kVec + i], acc[g][i]);
  }
  __syncthreads();
  for (int i = threadIdx.x; i < group * D; i += kThreads) {
    const int g = i / D, d = i % D;
    part_acc[(part + g * splits) * D + d] = acc_sum[g][d];
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

template <class T, int D, int MAXG>
void launch_typed(const DecodeAttentionArgs& a, cudaStream_t stream) {
  dim3 grid(a.batch, a.kv_heads, a.splits);
  decode_attention_partial<T, D, MAXG><<<grid, kThreads, 0, stream>>>(
      static_cast<const T*>(a.q), static_cast<const T*>(a.k_cache), static_cast<const T*>(a.v_cache), a.slots,
      a.positions, a.prefix_slot, a.prefix_len, a.heads, a.kv_heads, a.max_len, a.scale, a.splits, a.part_acc, a.part_m, a.part_l);
  decode_attention_merge<T><<<a.batch * a.heads, D < 128 ? D : 128, 0, stream>>>(a.part_acc, a.part_m, a.part_l,
                                                                               a.splits, D, static_cast<T*>(a.out));
}

// The group size rounded up to a power of two picks the registers kept per query head.
template <class T, int D>
bool launch_group(const DecodeAttentionArgs& a, cudaStream_t stream) {
  const int group = a.heads / a.kv_heads;
  if (group <= 1) launch_typed<T, D, 1>(a, stream);
  else if (group <= 2) launch_typed<T, D, 2>(a, stream);
  else if (group <= 4) launch_typed<T, D, 4>(a, stream);
  else if (group <= 8) launch_typed<T, D, 8>(a, stream);
  else if (group <= kMaxDecodeGroup) launch_typed<T, D, kMaxDecodeGroup>(a, stream);
  else return false;
  return true;
}

template <class T>
bool launch_dim(const DecodeAttentionArgs& a, cudaStream_t stream) {
  switch (a.head_dim) {
    case 64: return launch_group<T, 64>(a, stream);
    case 128: return launch_group<T, 128>(a, stream);
    default: return false;
  }
}

// One thread per output element; a part with a non-finite log-sum-exp is empty.
template <class T>
__global__ void merge_parts(MergePartsArgs a) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t total = static_cast<int64_t>(a.batch) * a.heads * a.head_dim;
  if (i >= total) return;
  const int64_t row = i / a.head_dim, b = row / a.heads, h = row % a.heads;
  const float l1 = a.lse1[b * a.lse1_b_stride + h * a.lse1_h_stride];
  const float l2 = a.lse2[b * a.lse2_b_stride + h * a.lse2_h_stride];
  const bool has1 = isfinite(l1), has2 = isfinite(l2);
  const float m = has1 && has2 ? fmaxf(l1, l2) : (has1 ? l1 : l2);
  const float w1 = has1 ? __expf(l1 - m) : 0.f, w2 = has2 ? __expf(l2 - m) : 0.f;
  const float denom = w1 + w2;
  const float v1 = to_float(static_cast<const T*>(a.o1)[i]), v2 = to_float(static_cast<const T*>(a.o2)[i]);
  static_cast<T*>(a.out)[i] = from_float<T>(denom > 0.f ? (w1 * v1 + w2 * v2) / denom : 0.f);
}

}  // namespace

int decode_attention_chunk() { return kChunk; }

void launch_merge_attention_parts(const MergePartsArgs& a, void* stream) {
  const int64_t total = static_cast<int64_t>(a.batch) * a.heads * a.head_dim;
  if (total == 0) return;
  constexpr int kBlock = 256;
  const auto blocks = static_cast<unsigned>((total + kBlock - 1) / kBlock);
  dispatch(a.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    merge_parts<T><<<blocks, kBlock, 0, static_cast<cudaStream_t>(stream)>>>(a);
  });
}

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
