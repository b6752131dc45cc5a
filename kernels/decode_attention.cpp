#include "decode_attention.h"

#include <cmath>

#include "common/error.h"

#ifdef MATHRL_HAVE_CUDA_KERNELS
#include <c10/cuda/CUDAStream.h>

#include "cuda_launch.h"
#include "decode_attention_cuda.h"
#endif

namespace mathrl::kernels {

namespace {

void check_shapes(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache, const at::Tensor& slots,
                  const at::Tensor& positions) {
  MATHRL_CHECK(q.dim() == 3 && k_cache.dim() == 4 && k_cache.sizes() == v_cache.sizes(),
               "decode_attention: q [B, heads, D], caches [slots, kv_heads, max_len, D]");
  MATHRL_CHECK(q.size(2) == k_cache.size(3) && q.size(1) % k_cache.size(1) == 0,
               "decode_attention: head_dim or head counts disagree between q and the cache");
  MATHRL_CHECK(slots.dim() == 1 && positions.dim() == 1 && slots.size(0) == q.size(0) && positions.size(0) == q.size(0),
               "decode_attention: slots and positions must be [B]");
}

}  // namespace

at::Tensor decode_attention_reference(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                                      const at::Tensor& slots, const at::Tensor& positions, double scale) {
  check_shapes(q, k_cache, v_cache, slots, positions);
  const int64_t B = q.size(0), heads = q.size(1), D = q.size(2), kv_heads = k_cache.size(1);
  auto slots_cpu = slots.to(at::kCPU), positions_cpu = positions.to(at::kCPU);
  auto out = at::empty_like(q);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t slot = slots_cpu[b].item<int64_t>(), last = positions_cpu[b].item<int64_t>();
    MATHRL_CHECK(slot >= 0 && slot < k_cache.size(0) && last >= 0 && last < k_cache.size(2),
                 "decode_attention: slot ", slot, " position ", last, " outside the cache");
    at::Tensor keys = k_cache[slot].narrow(1, 0, last + 1).to(at::kFloat);    // [kv, L, D]
    at::Tensor values = v_cache[slot].narrow(1, 0, last + 1).to(at::kFloat);
    at::Tensor qb = q[b].to(at::kFloat).view({kv_heads, heads / kv_heads, D});  // [kv, group, D]
    at::Tensor probs = at::softmax(at::matmul(qb, keys.transpose(1, 2)) * scale, -1);
    out[b].copy_(at::matmul(probs, values).reshape({heads, D}));
  }
  return out;
}

bool decode_attention_uses_kernel(at::ScalarType q_dtype, int64_t heads, const at::Tensor& k_cache) {
#ifdef MATHRL_HAVE_CUDA_KERNELS
  const bool dtype_ok = q_dtype == at::kFloat || q_dtype == at::kBFloat16 || q_dtype == at::kHalf;
  const int64_t D = k_cache.size(3), kv_heads = k_cache.size(1);
  return k_cache.is_cuda() && dtype_ok && k_cache.scalar_type() == q_dtype && k_cache.is_contiguous() &&
         (D == 64 || D == 128) && heads % kv_heads == 0 && heads / kv_heads <= cuda::kMaxDecodeGroup;
#else
  (void)q_dtype, (void)heads, (void)k_cache;
  return false;
#endif
}

at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                            const at::Tensor& slots, const at::Tensor& positions, double scale) {
  check_shapes(q, k_cache, v_cache, slots, positions);
  if (!decode_attention_uses_kernel(q.scalar_type(), q.size(1), k_cache) || !v_cache.is_contiguous())
    return decode_attention_reference(q, k_cache, v_cache, slots, positions, scale);
#ifdef MATHRL_HAVE_CUDA_KERNELS
  const int64_t B = q.size(0), heads = q.size(1), D = q.size(2), max_len = k_cache.size(2);
  const int chunk = cuda::decode_attention_chunk();
  const int splits = static_cast<int>((max_len + chunk - 1) / chunk);
  at::Tensor qc = q.contiguous();
  auto f32 = q.options().dtype(at::kFloat);
  at::Tensor part_acc = at::empty({B, heads, splits, D}, f32);
  at::Tensor part_m = at::empty({B, heads, splits}, f32), part_l = at::empty({B, heads, splits}, f32);
  at::Tensor out = at::empty_like(qc);
  at::Tensor slots64 = slots.to(at::kLong).contiguous(), positions64 = positions.to(at::kLong).contiguous();
  cuda::DecodeAttentionArgs a{};
  a.q = qc.data_ptr(), a.k_cache = k_cache.data_ptr(), a.v_cache = v_cache.data_ptr();
  a.slots = slots64.data_ptr<int64_t>(), a.positions = positions64.data_ptr<int64_t>();
  a.out = out.data_ptr(), a.part_acc = part_acc.data_ptr<float>(), a.part_m = part_m.data_ptr<float>();
  a.part_l = part_l.data_ptr<float>();
  a.dtype = cuda::dtype_of(q);
  a.batch = static_cast<int>(B), a.heads = static_cast<int>(heads), a.kv_heads = static_cast<int>(k_cache.size(1));
  a.head_dim = static_cast<int>(D), a.splits = splits, a.max_len = max_len, a.scale = static_cast<float>(scale);
  MATHRL_CHECK(cuda::launch_decode_attention(a, at::cuda::getCurrentCUDAStream(q.device().index()).stream()),
               "decode_attention: no kernel for head_dim ", D);
  cuda::check_launch("decode_attention kernel");
  return out;
#else
  return {};
#endif
}

}  // namespace mathrl::kernels
