#include "decode_attention_cpu.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "common/error.h"

namespace mathrl::kernels::cpu {

namespace {

// Partial sums per dot product: a fixed-width inner loop the compiler vectorizes (one AVX-512
// register of floats). Every helper is always inlined, so the AVX-512 clone of the float path
// (attend_range_avx512) compiles all of it for that ISA.
constexpr int64_t kLanes = 16;
#define MATHRL_INLINE [[gnu::always_inline]] inline

template <typename T>
MATHRL_INLINE float dot(const float* __restrict q, const T* __restrict k, int64_t D) {
  float lanes[kLanes] = {};
  int64_t d = 0;
  for (; d + kLanes <= D; d += kLanes)
    for (int64_t j = 0; j < kLanes; ++j) lanes[j] += q[d + j] * static_cast<float>(k[d + j]);
  float sum = 0;
  for (; d < D; ++d) sum += q[d] * static_cast<float>(k[d]);
  for (int64_t j = 0; j < kLanes; ++j) sum += lanes[j];
  return sum;
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

// One (row b, KV head) pair: its `group` query heads against positions 0..last, two passes
// (scores and their maximum, then the weighted values) over keys read where they lie.
template <typename T>
MATHRL_INLINE void attend(const T* q, const T* k_cache, const T* v_cache, T* out, const Rows& r, int64_t b, int64_t kv,
            int64_t kv_heads, int64_t group, int64_t max_len, int64_t D, float scale, std::vector<float>& scratch) {
  const int64_t slot = r.slots[b], last = r.positions[b];
  const int64_t src = r.prefix_slot ? r.prefix_slot[b] : slot;
  const int64_t shared = r.prefix_slot ? std::clamp<int64_t>(r.prefix_len[b], 0, last + 1) : 0;
  const int64_t n = last + 1;
  scratch.resize(static_cast<size_t>(group * (n + 2 * D + 2)));
  float* scores = scratch.data();  // [group, n]
  float* qf = scores + group * n;  // [group, D], scaled
  float* acc = qf + group * D;     // [group, D]
  float* top = acc + group * D;    // [group]: each head's largest score
  float* total = top + group;      // [group]: its softmax denominator
  const int64_t heads = kv_heads * group;
  for (int64_t g = 0; g < group; ++g)
    for (int64_t d = 0; d < D; ++d) qf[g * D + d] = static_cast<float>(q[(b * heads + kv * group + g) * D + d]) * scale;
  auto row = [&](const T* cache, int64_t t) {
    return cache + (((t < shared ? src : slot) * kv_heads + kv) * max_len + t) * D;
  };
  std::fill(top, top + group, -std::numeric_limits<float>::infinity());
  std::fill(total, total + group, 0.f);
  for (int64_t t = 0; t < n; ++t) {
    const T* key = row(k_cache, t);
    for (int64_t g = 0; g < group; ++g) {
      const float s = dot(qf + g * D, key, D);
      scores[g * n + t] = s;
      top[g] = std::max(top[g], s);
    }
  }
  for (int64_t g = 0; g < group; ++g)
    for (int64_t t = 0; t < n; ++t) total[g] += (scores[g * n + t] = std::exp(scores[g * n + t] - top[g]));
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

__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,prefer-vector-width=512"))) void attend_range_avx512(
    const float* q, const float* k, const float* v, float* out, const Job& j, int64_t begin, int64_t end) {
  attend_range(q, k, v, out, j, begin, end);
}

bool has_avx512() {
  static const bool yes = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                          __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
  return yes;
}

template <typename T>
void run_range(const T* q, const T* k, const T* v, T* out, const Job& j, int64_t begin, int64_t end) {
  if constexpr (std::is_same_v<T, float>) {
    if (has_avx512()) return attend_range_avx512(q, k, v, out, j, begin, end);
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
