// The CPU decode attention: each (row, KV head) reads its slot's keys and values in place, so a
// decode step on the CPU copies nothing out of the cache (the ATen reference gathers every row's
// span, then masks a padded score matrix). Work is split over (row, KV head) pairs, each summed
// in a fixed order, so results do not depend on the thread count.
#pragma once
#include <ATen/ATen.h>

#include "decode_attention.h"

namespace mathrl::kernels::cpu {

// A cache the loop reads in place for queries of `q_dtype`: on the CPU, contiguous, of q's dtype,
// float32, float64, bfloat16 or float16.
bool cache_supported(at::ScalarType q_dtype, const at::Tensor& cache);

// The shapes decode_attention documents, on CPU tensors: q [B, heads, D] (any strides), both
// caches as cache_supported says, slots/positions (and prefix) [B] integer.
bool decode_attention_supported(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache);

// The float32 loop picks its instruction set at run time (cpu_isa.h).
at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                            const at::Tensor& slots, const at::Tensor& positions, double scale,
                            const SharedPrefix& prefix);

}  // namespace mathrl::kernels::cpu
