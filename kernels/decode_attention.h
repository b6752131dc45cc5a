// Attention of one new token per sequence over a slot-indexed KV cache (the decode step of the
// rollout engine). The CUDA kernel reads each slot's keys and values in place (no gather copy, no
// float32 score matrix of the batch) and needs no host synchronization, so decode steps can be
// captured in CUDA graphs. The ATen path (CPU, and shapes the kernel does not cover) computes the
// same thing per sequence and is the reference the kernel is tested against.
#pragma once
#include <ATen/ATen.h>

namespace mathrl::kernels {

// Shared prompt prefixes: row b reads positions [0, len[b]) from slot slot[b] and the rest from its
// own slot, so the G samples of a prompt read one copy of its keys and values (no per-sample copy,
// and one prompt's rows read the same memory, which stays in L2). Undefined tensors: nothing shared.
struct SharedPrefix {
  at::Tensor slot, len;  // [B] int64 on q's device
  bool defined() const { return slot.defined(); }
};

// q [B, heads, D]; k_cache, v_cache [slots, kv_heads, max_len, D] (contiguous, q's dtype);
// slots, positions [B] int64 on q's device. Row b attends to positions 0..positions[b] of slot
// slots[b] (its first prefix.len[b] positions from slot prefix.slot[b]). Returns [B, heads, D] in
// q's dtype.
at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                            const at::Tensor& slots, const at::Tensor& positions, double scale,
                            const SharedPrefix& prefix = {});

// The per-sequence ATen computation (reads positions and slots on the host).
at::Tensor decode_attention_reference(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                                      const at::Tensor& slots, const at::Tensor& positions, double scale,
                                      const SharedPrefix& prefix = {});

// Two attention results over disjoint key sets, each normalized, with its log-sum-exp of scores
// (o [B, heads, D], lse [B, heads] float32; any strides), merged into the attention over the union:
// sum_i exp(lse_i - m) o_i / sum_i exp(lse_i - m). A part whose lse is not finite is empty (an
// empty key set: FlashAttention reports +inf). CUDA kernel, ATen elsewhere.
at::Tensor merge_attention_parts(const at::Tensor& o1, const at::Tensor& lse1, const at::Tensor& o2,
                                 const at::Tensor& lse2);
at::Tensor merge_attention_parts_reference(const at::Tensor& o1, const at::Tensor& lse1, const at::Tensor& o2,
                                           const at::Tensor& lse2);

// Which in-place path a decode step takes where both apply (bf16/fp16 on CUDA):
// MATHRL_DECODE_ATTENTION=kernel (this file's kernel) or flash (FlashAttention, the default).
bool decode_attention_preferred();

// True when decode_attention reads this cache in place: the CUDA kernel, or the CPU loop
// (kernels/decode_attention_cpu) on a contiguous CPU cache of q's dtype. The model then needs no
// span (no host synchronization) for a decode step.
bool decode_attention_in_place(at::ScalarType q_dtype, int64_t heads, const at::Tensor& k_cache);

// True when decode_attention runs the CUDA kernel for queries of `q_dtype` with `heads` heads over
// this cache (else it falls back to the reference).
bool decode_attention_uses_kernel(at::ScalarType q_dtype, int64_t heads, const at::Tensor& k_cache);

}  // namespace mathrl::kernels
