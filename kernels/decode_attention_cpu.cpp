#include "decode_attention_cpu.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "common/error.h"
#include "cpu_exp.h"
#include "cpu_isa.h"

namespace mathrl::kernels::cpu {

namespace {

// Partial sums per dot product: a fixed-width inner loop the compiler vectorizes (one AVX-512
// register of floats). Every helper is always inlined, so the AVX-512 clone of the float path
// (attend_range_avx512) compiles all of it for that ISA.
constexpr int64_t kLanes = 16;
#define MATHRL_INLINE [[gnu::always_inline]] inline

// Lanes folded as a tree (8, 4, 2, 1 apart): a fixed order the compiler turns into shuffles, where
// a left-to-right sum of 16 lanes is a chain of 16 dependent scalar adds per dot product.
MATHRL_INLINE float fold(float* lanes) {
  for (int64_t width = kLanes / 2; width > 0; width /= 2)
    for (int64_t j = 0; j < width; ++j) lanes[j] += lanes[j + width];
  return lanes[0];
}

template <typename T>
MATHRL_INLINE float dot(const float* __restrict q, const T* __restrict k, int64_t D) {
  float lanes[kLanes] = {};
  int64_t d = 0;
  for (; d + kLanes <= D; d += kLanes)
    for (int64_t j = 0; j < kLanes; ++j) lanes[j] += q[d + j] * static_cast<float>(k[d + j]);
  float tail = 0;
  for (; d < D; ++d) tail += q[d] * static_cast<float>(k[d]);
  return fold(lanes) + tail;
}

MATHRL_INLINE float sum(const float* __restrict x, int64_t n) {
  float lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int64_t j = 0; j < kLanes; ++j) lanes[j] += x[i + j];
  float tail = 0;
  for (; i < n; ++i) tail += x[i];
  return fold(lanes) + tail;
}

// acc += p * value, in fixed-width pieces (restrict: the accumulator never aliases the cache).
template <typename T>
MATHRL_INLINE void axpy(float p, const T* __restrict value, float* __restrict acc, int64_t D) {
  int64_t d = 0;
  for (; d + kLanes <= D; d += kLanes)
    for (int64_t j = 0; j < kLanes; ++j) acc[d + j] += p * static_cast<float>(value[d + j]);
  for (; d < D; ++d) acc[d] += p * static_cast<float>(value[d]);
}

struct Rows {
  const int64_t* slots;
  const int64_t* positions;
  const int64_t* prefix_slot;  // null: nothing shared
  const int64_t* prefix_len;
};

// Where row b's keys and values lie: positions below `shared` in the prompt's slot `src`, the rest
// in the row's own slot; n = positions 0..last.
struct Span {
  int64_t slot, src, shared, n;
};

MATHRL_INLINE Span span_of(const Rows& r, int64_t b) {
  const int64_t slot = r.slots[b], last = r.positions[b];
  const int64_t src = r.prefix_slot ? r.prefix_slot[b] : slot;
  const int64_t shared = r.prefix_slot ? std::clamp<int64_t>(r.prefix_len[b], 0, last + 1) : 0;
  return {slot, src, shared, last + 1};
}

// Position t's row of KV head kv in a [slots, kv_heads, max_len, D] cache.
template <typename T>
MATHRL_INLINE const T* cache_row(const T* cache, const Span& k, int64_t kv, int64_t kv_heads, int64_t max_len, int64_t D,
                                 int64_t t) {
  return cache + (((t < k.shared ? k.src : k.slot) * kv_heads + kv) * max_len + t) * D;
}

// Scores -> unnormalized softmax weights in place; returns their sum.
MATHRL_INLINE float softmax_weights(float* s, int64_t n) {
  float top = -std::numeric_limits<float>::infinity();
  for (int64_t t = 0; t < n; ++t) top = std::max(top, s[t]);
  for (int64_t t = 0; t < n; ++t) s[t] = exp_clamped(s[t] - top);  // x <= 0
  return sum(s, n);
}

// One (row b, KV head) pair: its `group` query heads against positions 0..last, two passes
// (scores, then the weighted values) over keys read where they lie.
template <typename T>
MATHRL_INLINE void attend(const T* q, const T* k_cache, const T* v_cache, T* out, const Rows& r, int64_t b, int64_t kv,
            int64_t kv_heads, int64_t group, int64_t max_len, int64_t D, float scale, std::vector<float>& scratch) {
  const Span k = span_of(r, b);
  const int64_t n = k.n;
  scratch.resize(static_cast<size_t>(group * (n + 2 * D + 1)));
  float* scores = scratch.data();  // [group, n]
  float* qf = scores + group * n;  // [group, D], scaled
  float* acc = qf + group * D;     // [group, D]
  float* total = acc + group * D;  // [group]: each head's softmax denominator
  const int64_t heads = kv_heads * group;
  for (int64_t g = 0; g < group; ++g)
    for (int64_t d = 0; d < D; ++d) qf[g * D + d] = static_cast<float>(q[(b * heads + kv * group + g) * D + d]) * scale;
  auto row = [&](const T* cache, int64_t t) { return cache_row(cache, k, kv, kv_heads, max_len, D, t); };
  for (int64_t t = 0; t < n; ++t) {
    const T* key = row(k_cache, t);
    for (int64_t g = 0; g < group; ++g) scores[g * n + t] = dot(qf + g * D, key, D);
  }
  for (int64_t g = 0; g < group; ++g) total[g] = softmax_weights(scores + g * n, n);
  std::fill(acc, acc + group * D, 0.f);
  for (int64_t t = 0; t < n; ++t) {
    const T* value = row(v_cache, t);
    for (int64_t g = 0; g < group; ++g) axpy(scores[g * n + t], value, acc + g * D, D);
  }
  for (int64_t g = 0; g < group; ++g)
    for (int64_t d = 0; d < D; ++d) out[(b * heads + kv * group + g) * D + d] = static_cast<T>(acc[g * D + d] / total[g]);
}

// Rows [begin, end) of the (row, KV head) pairs.
struct Job {
  const Rows* rows;
  int64_t kv_heads, group, max_len, D;
  float scale;
};

template <typename T>
MATHRL_INLINE void attend_range(const T* q, const T* k, const T* v, T* out, const Job& j, int64_t begin, int64_t end) {
  std::vector<float> scratch;
  for (int64_t i = begin; i < end; ++i)
    attend(q, k, v, out, *j.rows, i / j.kv_heads, i % j.kv_heads, j.kv_heads, j.group, j.max_len, j.D, j.scale, scratch);
}

#define MATHRL_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,prefer-vector-width=512")))

MATHRL_AVX512 void attend_range_avx512(const float* q, const float* k, const float* v, float* out, const Job& j,
                                       int64_t begin, int64_t end) {
  attend_range(q, k, v, out, j, begin, end);
}

// Machines with AVX2 but not AVX-512 (most x86-64 CPUs, AMD's among them) run this clone: the
// default build is SSE2, four lanes without FMA.
#define MATHRL_AVX2 __attribute__((target("avx2,fma")))

MATHRL_AVX2 void attend_range_avx2(const float* q, const float* k, const float* v, float* out, const Job& j,
                                   int64_t begin, int64_t end) {
  attend_range(q, k, v, out, j, begin, end);
}

// ---- AVX-512 blocks for float32 heads of 16, 32, 64 or 128 ------------------------------------
// The loop above sums each dot product's 16 lanes on its own (~30 instructions per head and key);
// here the scores of 16 keys are formed at once and their lanes summed together by one
// transpose-and-add tree (~5 per head and key), and the weighted values are accumulated in
// registers. Fixed orders throughout, so the bits still do not depend on the thread count.

// Lane i of the result is the sum of the 16 lanes of p[i].
MATHRL_AVX512 MATHRL_INLINE __m512 sum_each(const __m512* p) {
  __m512 pairs[8], quads[4], halves[2];
  for (int i = 0; i < 8; ++i)  // per 128-bit lane: [a0+a2, b0+b2, a1+a3, b1+b3]
    pairs[i] = _mm512_add_ps(_mm512_unpacklo_ps(p[2 * i], p[2 * i + 1]), _mm512_unpackhi_ps(p[2 * i], p[2 * i + 1]));
  for (int i = 0; i < 4; ++i) {  // per 128-bit lane: four vectors' sums over that lane
    const __m512d x = _mm512_castps_pd(pairs[2 * i]), y = _mm512_castps_pd(pairs[2 * i + 1]);
    quads[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)), _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
  }
  constexpr int kEven = 0x88, kOdd = 0xDD;  // 128-bit lanes (0, 2 | 0, 2) and (1, 3 | 1, 3) of two vectors
  for (int i = 0; i < 2; ++i)
    halves[i] = _mm512_add_ps(_mm512_shuffle_f32x4(quads[2 * i], quads[2 * i + 1], kEven),
                              _mm512_shuffle_f32x4(quads[2 * i], quads[2 * i + 1], kOdd));
  return _mm512_add_ps(_mm512_shuffle_f32x4(halves[0], halves[1], kEven), _mm512_shuffle_f32x4(halves[0], halves[1], kOdd));
}

template <int kChunks>  // head size / 16
MATHRL_AVX512 void attend_blocks(const float* q, const float* k_cache, const float* v_cache, float* out, const Rows& r,
                                 int64_t b, int64_t kv, const Job& j, std::vector<float>& scratch) {
  constexpr int64_t D = kChunks * 16;
  const int64_t group = j.group, heads = j.kv_heads * group;
  const Span k = span_of(r, b);
  const int64_t n = k.n, padded = (n + 15) / 16 * 16;
  scratch.resize(static_cast<size_t>(group * (padded + D)));
  float* scores = scratch.data();       // [group, padded]
  float* qf = scores + group * padded;  // [group, D], scaled
  for (int64_t g = 0; g < group; ++g)
    for (int64_t d = 0; d < D; ++d) qf[g * D + d] = q[(b * heads + kv * group + g) * D + d] * j.scale;
  auto row = [&](const float* cache, int64_t t) { return cache_row(cache, k, kv, j.kv_heads, j.max_len, D, t); };
  for (int64_t t0 = 0; t0 < n; t0 += 16) {
    const float* keys[16];
    for (int64_t i = 0; i < 16; ++i) keys[i] = row(k_cache, std::min(t0 + i, n - 1));  // past n: unused scores
    for (int64_t g = 0; g < group; ++g) {
      __m512 qv[kChunks], part[16];
      for (int c = 0; c < kChunks; ++c) qv[c] = _mm512_loadu_ps(qf + g * D + 16 * c);
      for (int i = 0; i < 16; ++i) {
        __m512 acc = _mm512_mul_ps(qv[0], _mm512_loadu_ps(keys[i]));
        for (int c = 1; c < kChunks; ++c) acc = _mm512_fmadd_ps(qv[c], _mm512_loadu_ps(keys[i] + 16 * c), acc);
        part[i] = acc;
      }
      _mm512_storeu_ps(scores + g * padded + t0, sum_each(part));
    }
  }
  for (int64_t g = 0; g < group; ++g) {
    float* s = scores + g * padded;
    const float total = softmax_weights(s, n);
    // Two accumulators per piece (even and odd keys): two FMA chains in flight instead of one.
    __m512 even[kChunks], odd[kChunks];
    for (int c = 0; c < kChunks; ++c) even[c] = odd[c] = _mm512_setzero_ps();
    int64_t t = 0;
    for (; t + 2 <= n; t += 2) {
      const float *v0 = row(v_cache, t), *v1 = row(v_cache, t + 1);
      const __m512 p0 = _mm512_set1_ps(s[t]), p1 = _mm512_set1_ps(s[t + 1]);
      for (int c = 0; c < kChunks; ++c) {
        even[c] = _mm512_fmadd_ps(p0, _mm512_loadu_ps(v0 + 16 * c), even[c]);
        odd[c] = _mm512_fmadd_ps(p1, _mm512_loadu_ps(v1 + 16 * c), odd[c]);
      }
    }
    if (t < n) {
      const float* v0 = row(v_cache, t);
      for (int c = 0; c < kChunks; ++c) even[c] = _mm512_fmadd_ps(_mm512_set1_ps(s[t]), _mm512_loadu_ps(v0 + 16 * c), even[c]);
    }
    const __m512 inv = _mm512_set1_ps(1.f / total);
    float* o = out + (b * heads + kv * group + g) * D;
    for (int c = 0; c < kChunks; ++c) _mm512_storeu_ps(o + 16 * c, _mm512_mul_ps(_mm512_add_ps(even[c], odd[c]), inv));
  }
}

template <int kChunks>
MATHRL_AVX512 void attend_blocks_range(const float* q, const float* k, const float* v, float* out, const Job& j,
                                       int64_t begin, int64_t end) {
  std::vector<float> scratch;
  for (int64_t i = begin; i < end; ++i) attend_blocks<kChunks>(q, k, v, out, *j.rows, i / j.kv_heads, i % j.kv_heads, j, scratch);
}

// ---- AVX2 blocks for float32 heads of 8, 16, 32, 64 or 128 --------------------------------------
// The same scheme in 8-wide registers, for machines without AVX-512: the scores of 8 keys at once,
// their lanes summed by one hadd/permute tree; fixed orders, as above.

// Lane i of the result is the sum of the 8 lanes of p[i].
MATHRL_AVX2 MATHRL_INLINE __m256 sum_each8(const __m256* p) {
  const __m256 t0 = _mm256_hadd_ps(p[0], p[1]), t1 = _mm256_hadd_ps(p[2], p[3]);
  const __m256 t2 = _mm256_hadd_ps(p[4], p[5]), t3 = _mm256_hadd_ps(p[6], p[7]);
  const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);  // per 128-bit half: 4 vectors' partial sums
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

template <int kChunks>  // head size / 8
MATHRL_AVX2 void attend_blocks8(const float* q, const float* k_cache, const float* v_cache, float* out, const Rows& r,
                                int64_t b, int64_t kv, const Job& j, std::vector<float>& scratch) {
  constexpr int64_t D = kChunks * 8;
  const int64_t group = j.group, heads = j.kv_heads * group;
  const Span k = span_of(r, b);
  const int64_t n = k.n, padded = (n + 7) / 8 * 8;
  scratch.resize(static_cast<size_t>(group * (padded + D)));
  float* scores = scratch.data();       // [group, padded]
  float* qf = scores + group * padded;  // [group, D], scaled
  for (int64_t g = 0; g < group; ++g)
    for (int64_t d = 0; d < D; ++d) qf[g * D + d] = q[(b * heads + kv * group + g) * D + d] * j.scale;
  auto row = [&](const float* cache, int64_t t) { return cache_row(cache, k, kv, j.kv_heads, j.max_len, D, t); };
  for (int64_t t0 = 0; t0 < n; t0 += 8) {
    const float* keys[8];
    for (int64_t i = 0; i < 8; ++i) keys[i] = row(k_cache, std::min(t0 + i, n - 1));  // past n: unused scores
    for (int64_t g = 0; g < group; ++g) {
      __m256 qv[kChunks], part[8];
      for (int c = 0; c < kChunks; ++c) qv[c] = _mm256_loadu_ps(qf + g * D + 8 * c);
      for (int i = 0; i < 8; ++i) {
        __m256 acc = _mm256_mul_ps(qv[0], _mm256_loadu_ps(keys[i]));
        for (int c = 1; c < kChunks; ++c) acc = _mm256_fmadd_ps(qv[c], _mm256_loadu_ps(keys[i] + 8 * c), acc);
        part[i] = acc;
      }
      _mm256_storeu_ps(scores + g * padded + t0, sum_each8(part));
    }
  }
  for (int64_t g = 0; g < group; ++g) {
    float* s = scores + g * padded;
    const float total = softmax_weights(s, n);
    __m256 even[kChunks], odd[kChunks];  // two FMA chains in flight
    for (int c = 0; c < kChunks; ++c) even[c] = odd[c] = _mm256_setzero_ps();
    int64_t t = 0;
    for (; t + 2 <= n; t += 2) {
      const float *v0 = row(v_cache, t), *v1 = row(v_cache, t + 1);
      const __m256 p0 = _mm256_set1_ps(s[t]), p1 = _mm256_set1_ps(s[t + 1]);
      for (int c = 0; c < kChunks; ++c) {
        even[c] = _mm256_fmadd_ps(p0, _mm256_loadu_ps(v0 + 8 * c), even[c]);
        odd[c] = _mm256_fmadd_ps(p1, _mm256_loadu_ps(v1 + 8 * c), odd[c]);
      }
    }
    if (t < n) {
      const float* v0 = row(v_cache, t);
      for (int c = 0; c < kChunks; ++c) even[c] = _mm256_fmadd_ps(_mm256_set1_ps(s[t]), _mm256_loadu_ps(v0 + 8 * c), even[c]);
    }
    const __m256 inv = _mm256_set1_ps(1.f / total);
    float* o = out + (b * heads + kv * group + g) * D;
    for (int c = 0; c < kChunks; ++c) _mm256_storeu_ps(o + 8 * c, _mm256_mul_ps(_mm256_add_ps(even[c], odd[c]), inv));
  }
}

template <int kChunks>
MATHRL_AVX2 void attend_blocks8_range(const float* q, const float* k, const float* v, float* out, const Job& j,
                                      int64_t begin, int64_t end) {
  std::vector<float> scratch;
  for (int64_t i = begin; i < end; ++i) attend_blocks8<kChunks>(q, k, v, out, *j.rows, i / j.kv_heads, i % j.kv_heads, j, scratch);
}

// The block path for this head size, or null.
using RangeFn = void (*)(const float*, const float*, const float*, float*, const Job&, int64_t, int64_t);
RangeFn blocks_for(int64_t D) {
  switch (D) {
    case 16: return attend_blocks_range<1>;
    case 32: return attend_blocks_range<2>;
    case 64: return attend_blocks_range<4>;
    case 128: return attend_blocks_range<8>;
    default: return nullptr;
  }
}

RangeFn blocks8_for(int64_t D) {
  switch (D) {
    case 8: return attend_blocks8_range<1>;
    case 16: return attend_blocks8_range<2>;
    case 32: return attend_blocks8_range<4>;
    case 64: return attend_blocks8_range<8>;
    case 128: return attend_blocks8_range<16>;
    default: return nullptr;
  }
}

template <typename T>
void run_range(const T* q, const T* k, const T* v, T* out, const Job& j, int64_t begin, int64_t end) {
  if constexpr (std::is_same_v<T, float>) {
    const CpuIsa isa = active_cpu_isa();
    if (isa == CpuIsa::avx512) {
      if (RangeFn blocks = blocks_for(j.D)) return blocks(q, k, v, out, j, begin, end);
      return attend_range_avx512(q, k, v, out, j, begin, end);
    }
    if (isa == CpuIsa::avx2) {
      if (RangeFn blocks = blocks8_for(j.D)) return blocks(q, k, v, out, j, begin, end);
      return attend_range_avx2(q, k, v, out, j, begin, end);
    }
  }
  attend_range(q, k, v, out, j, begin, end);
}

at::Tensor long_contiguous(const at::Tensor& t) { return t.to(at::kLong).contiguous(); }

}  // namespace

bool cache_supported(at::ScalarType q_dtype, const at::Tensor& cache) {
  const bool dtype_ok = q_dtype == at::kFloat || q_dtype == at::kBFloat16 || q_dtype == at::kHalf || q_dtype == at::kDouble;
  return dtype_ok && cache.device().is_cpu() && cache.scalar_type() == q_dtype && cache.is_contiguous();
}

bool decode_attention_supported(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache) {
  return q.device().is_cpu() && cache_supported(q.scalar_type(), k_cache) && cache_supported(q.scalar_type(), v_cache);
}

at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                            const at::Tensor& slots, const at::Tensor& positions, double scale,
                            const SharedPrefix& prefix) {
  MATHRL_CHECK(decode_attention_supported(q, k_cache, v_cache), "decode_attention (CPU): unsupported tensors");
  const int64_t B = q.size(0), heads = q.size(1), D = q.size(2);
  const int64_t n_slots = k_cache.size(0), kv_heads = k_cache.size(1), max_len = k_cache.size(2);
  const int64_t group = heads / kv_heads;
  at::Tensor slots64 = long_contiguous(slots), positions64 = long_contiguous(positions);
  at::Tensor pslot64, plen64;
  Rows rows{slots64.data_ptr<int64_t>(), positions64.data_ptr<int64_t>(), nullptr, nullptr};
  if (prefix.defined()) {
    pslot64 = long_contiguous(prefix.slot), plen64 = long_contiguous(prefix.len);
    rows.prefix_slot = pslot64.data_ptr<int64_t>(), rows.prefix_len = plen64.data_ptr<int64_t>();
  }
  // Checked before any thread starts: a bad index must be an error, not a read outside the cache.
  for (int64_t b = 0; b < B; ++b) {
    MATHRL_CHECK(rows.slots[b] >= 0 && rows.slots[b] < n_slots && rows.positions[b] >= 0 && rows.positions[b] < max_len,
                 "decode_attention: slot ", rows.slots[b], " position ", rows.positions[b], " outside the cache");
    MATHRL_CHECK(!rows.prefix_slot || (rows.prefix_slot[b] >= 0 && rows.prefix_slot[b] < n_slots),
                 "decode_attention: prefix slot ", rows.prefix_slot ? rows.prefix_slot[b] : 0, " outside the cache");
  }
  at::Tensor qc = q.contiguous();
  at::Tensor out = at::empty_like(qc);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, qc.scalar_type(), "decode_attention_cpu", [&] {
    const auto* qp = qc.const_data_ptr<scalar_t>();
    const auto* kp = k_cache.const_data_ptr<scalar_t>();
    const auto* vp = v_cache.const_data_ptr<scalar_t>();
    auto* op = out.data_ptr<scalar_t>();
    const Job job{&rows, kv_heads, group, max_len, D, static_cast<float>(scale)};
    at::parallel_for(0, B * kv_heads, 1, [&](int64_t begin, int64_t end) { run_range(qp, kp, vp, op, job, begin, end); });
  });
  return out;
}

}  // namespace mathrl::kernels::cpu
