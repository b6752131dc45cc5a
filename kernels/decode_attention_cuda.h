// Raw launcher for the CUDA decode attention (no torch headers, so nvcc stays fast).
#pragma once
#include <cstdint>

#include "token_logprobs_cuda.h"  // DType

namespace mathrl::kernels::cuda {

inline constexpr int kMaxDecodeGroup = 16;  // query heads per KV head the kernel handles

struct DecodeAttentionArgs {
  const void* q;        // [batch, heads, head_dim]
  const void* k_cache;  // [slots, kv_heads, max_len, head_dim], contiguous
  const void* v_cache;
  const int64_t* slots;      // [batch]
  const int64_t* positions;  // [batch]: attend to positions 0..positions[b] of the slot
  const int64_t* prefix_slot;  // [batch] or null: positions < prefix_len[b] come from this slot
  const int64_t* prefix_len;   // [batch] or null
  void* out;                 // [batch, heads, head_dim], q's dtype
  float* part_acc;           // [batch, heads, splits, head_dim] scratch
  float* part_m;             // [batch, heads, splits]
  float* part_l;             // [batch, heads, splits]
  DType dtype;
  int batch, heads, kv_heads, head_dim, splits;
  int64_t max_len;
  float scale;
};

// Positions per chunk; splits = ceil(max_len / chunk).
int decode_attention_chunk();
// False when the head dimension is not one the kernel was built for (64, 128).
bool launch_decode_attention(const DecodeAttentionArgs& args, void* stream);

// out = merge of two normalized parts (see merge_attention_parts in decode_attention.h).
struct MergePartsArgs {
  const void* o1;  // [batch, heads, head_dim] contiguous, dtype
  const void* o2;
  const float* lse1;  // element (b, h) at b * lse_b_stride + h * lse_h_stride
  const float* lse2;
  void* out;  // [batch, heads, head_dim], dtype
  DType dtype;
  int batch, heads, head_dim;
  int64_t lse1_b_stride, lse1_h_stride, lse2_b_stride, lse2_h_stride;
};
void launch_merge_attention_parts(const MergePartsArgs& args, void* stream);

}  // namespace mathrl::kernels::cuda
