// Attention of new tokens over the slot-indexed KV cache through FlashAttention-2 (PyTorch's
// varlen kernel), on CUDA in bf16/fp16: decode (one token per row, where FlashAttention puts the
// query heads of a KV group on the tensor cores' M dimension and splits long caches across blocks)
// and prefill (a row's prompt, causal). The cache [slots, kv_heads, max_len, D] is read in place:
// viewed as rows of D with a head stride of max_len * D, slot s's keys start at row
// s * kv_heads * max_len, which is what varlen's cumulative key offsets name. No host
// synchronization, so decode steps stay capturable in CUDA graphs.
#pragma once
#include <ATen/ATen.h>

#include "decode_attention.h"  // SharedPrefix

namespace mathrl::kernels {

// True when flash_cached_attention runs for queries of `q_dtype` over this cache: a CUDA cache in
// q's dtype, bf16 or fp16, contiguous, head_dim a multiple of 8 up to 256. MATHRL_FLASH_DECODE=0
// turns it off (the decode kernel of decode_attention.h and the ATen path remain).
bool flash_cached_attention_supported(at::ScalarType q_dtype, int64_t heads, const at::Tensor& k_cache);

// q [B, T, heads, D]: row b's T new tokens at positions last[b]-T+1 .. last[b] of slot slots[b],
// whose keys/values are already in the caches. Each token attends causally to positions
// 0..its own. slots, last [B] integer tensors on q's device. Returns [B, T, heads, D].
// With a shared prefix (decode only, T == 1): two FlashAttention calls, one over each row's prefix
// positions in the prefix's slot and one over the rest in its own slot, merged by their
// log-sum-exps (merge_attention_parts).
at::Tensor flash_cached_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                                  const at::Tensor& slots, const at::Tensor& last, double scale,
                                  const SharedPrefix& prefix = {});

}  // namespace mathrl::kernels
