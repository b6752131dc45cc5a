// Attention of one new token per sequence over a slot-indexed KV cache (the decode step of the
// rollout engine). The CUDA kernel reads each slot's keys and values in place (no gather copy, no
// float32 score matrix of the batch) and needs no host synchronization, so decode steps can be
// captured in CUDA graphs. The ATen path (CPU, and shapes the kernel does not cover) computes the
// same thing per sequence and is the reference the kernel is tested against.
#pragma once
#include <ATen/ATen.h>

namespace mathrl::kernels {

// q [B, heads, D]; k_cache, v_cache [slots, kv_heads, max_len, D] (contiguous, q's dtype);
// slots, positions [B] int64 on q's device. Row b attends to positions 0..positions[b] of slot
// slots[b]. Returns [B, heads, D] in q's dtype.
at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                            const at::Tensor& slots, const at::Tensor& positions, double scale);

// The per-sequence ATen computation (reads positions and slots on the host).
at::Tensor decode_attention_reference(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                                      const at::Tensor& slots, const at::Tensor& positions, double scale);

// True when decode_attention runs the CUDA kernel for queries of `q_dtype` with `heads` heads over
// this cache (else it falls back to the reference).
bool decode_attention_uses_kernel(at::ScalarType q_dtype, int64_t heads, const at::Tensor& k_cache);

}  // namespace mathrl::kernels
