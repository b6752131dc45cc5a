#include "decode_attention.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/error.h"
#include "decode_attention_cpu.h"

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

void check_prefix(const SharedPrefix& prefix, const at::Tensor& q) {
  if (!prefix.defined()) return;
  MATHRL_CHECK(prefix.len.defined() && prefix.slot.dim() == 1 && prefix.len.dim() == 1 &&
                   prefix.slot.size(0) == q.size(0) && prefix.len.size(0) == q.size(0),
               "decode_attention: prefix slot and len must be [B]");
}

}  // namespace

at::Tensor decode_attention_reference(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                                      const at::Tensor& slots, const at::Tensor& positions, double scale,
                                      const SharedPrefix& prefix) {
  check_shapes(q, k_cache, v_cache, slots, positions);
  check_prefix(prefix, q);
  const int64_t B = q.size(0), heads = q.size(1), D = q.size(2), kv_heads = k_cache.size(1);
  auto slots_cpu = slots.to(at::kCPU), positions_cpu = positions.to(at::kCPU);
  at::Tensor pslot_cpu = prefix.defined() ? prefix.slot.to(at::kCPU) : at::Tensor();
  at::Tensor plen_cpu = prefix.defined() ? prefix.len.to(at::kCPU) : at::Tensor();
  auto out = at::empty_like(q);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t slot = slots_cpu[b].item<int64_t>(), last = positions_cpu[b].item<int64_t>();
    MATHRL_CHECK(slot >= 0 && slot < k_cache.size(0) && last >= 0 && last < k_cache.size(2),
                 "decode_attention: slot ", slot, " position ", last, " outside the cache");
    const int64_t src = prefix.defined() ? pslot_cpu[b].item<int64_t>() : slot;
    const int64_t shared = prefix.defined() ? std::clamp<int64_t>(plen_cpu[b].item<int64_t>(), 0, last + 1) : 0;
    MATHRL_CHECK(src >= 0 && src < k_cache.size(0), "decode_attention: prefix slot ", src, " outside the cache");
    auto rows = [&](const at::Tensor& cache) {  // [kv, last + 1, D]: the shared prefix, then the slot's own
      return at::cat({cache[src].narrow(1, 0, shared), cache[slot].narrow(1, shared, last + 1 - shared)}, 1).to(at::kFloat);
    };
    at::Tensor keys = rows(k_cache), values = rows(v_cache);
    at::Tensor qb = q[b].to(at::kFloat).view({kv_heads, heads / kv_heads, D});  // [kv, group, D]
    at::Tensor probs = at::softmax(at::matmul(qb, keys.transpose(1, 2)) * scale, -1);
    out[b].copy_(at::matmul(probs, values).reshape({heads, D}));
  }
  return out;
}

bool decode_attention_preferred() {
  static const bool kernel = [] {
    const char* v = std::getenv("MATHRL_DECODE_ATTENTION");
    const std::string choice = v ? v : "";
    MATHRL_CHECK(choice.empty() || choice == "kernel" || choice == "flash",
                 "MATHRL_DECODE_ATTENTION must be 'kernel' or 'flash', got '", choice, "'");
    return choice == "kernel";
  }();
  return kernel;
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

bool decode_attention_in_place(at::ScalarType q_dtype, int64_t heads, const at::Tensor& k_cache) {
  if (k_cache.device().is_cpu()) return cpu::cache_supported(q_dtype, k_cache);
  return decode_attention_uses_kernel(q_dtype, heads, k_cache);
}

at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                            const at::Tensor& slots, const at::Tensor& positions, double scale,
                            const SharedPrefix& prefix) {
  check_shapes(q, k_cache, v_cache, slots, positions);
  check_prefix(prefix, q);
  if (cpu::decode_attention_supported(q, k_cache, v_cache))
    return cpu::decode_attention(q, k_cache, v_cache, slots, positions, scale, prefix);
  if (!decode_attention_uses_kernel(q.scalar_type(), q.size(1), k_cache) || !v_cache.is_contiguous())
    return decode_attention_reference(q, k_cache, v_cache, slots, positions, scale, prefix);
#ifdef MATHRL_HAVE_CUDA_KERNELS
  const int64_t B = q.size(0), heads = q.size(1), D = q.size(2), max_len = k_cache.size(2);
  const int chunk = cuda::decode_attention_chunk();
  const int splits = static_cast<int>((max_len + chunk - 1) / chunk);
  at::Tensor qc = q.contiguous();
  if (reinterpret_cast<uintptr_t>(qc.data_ptr()) % 16 != 0) qc = qc.clone();  // the kernel reads q in 16-byte pieces
  auto f32 = q.options().dtype(at::kFloat);
  at::Tensor part_acc = at::empty({B, heads, splits, D}, f32);
  at::Tensor part_m = at::empty({B, heads, splits}, f32), part_l = at::empty({B, heads, splits}, f32);
  at::Tensor out = at::empty_like(qc);
  at::Tensor slots64 = slots.to(at::kLong).contiguous(), positions64 = positions.to(at::kLong).contiguous();
  cuda::DecodeAttentionArgs a{};
  a.q = qc.data_ptr(), a.k_cache = k_cache.data_ptr(), a.v_cache = v_cache.data_ptr();
  a.slots = slots64.data_ptr<int64_t>(), a.positions = positions64.data_ptr<int64_t>();
  at::Tensor pslot64, plen64;
  if (prefix.defined()) {
    pslot64 = prefix.slot.to(at::kLong).contiguous(), plen64 = prefix.len.to(at::kLong).contiguous();
    a.prefix_slot = pslot64.data_ptr<int64_t>(), a.prefix_len = plen64.data_ptr<int64_t>();
  }
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

namespace {

void check_parts(const at::Tensor& o1, const at::Tensor& lse1, const at::Tensor& o2, const at::Tensor& lse2) {
  MATHRL_CHECK(o1.dim() == 3 && o1.sizes() == o2.sizes() && o1.scalar_type() == o2.scalar_type(),
               "merge_attention_parts: o1 and o2 must both be [B, heads, D] of one dtype");
  MATHRL_CHECK(lse1.dim() == 2 && lse1.size(0) == o1.size(0) && lse1.size(1) == o1.size(1) && lse2.sizes() == lse1.sizes() &&
                   lse1.scalar_type() == at::kFloat && lse2.scalar_type() == at::kFloat,
               "merge_attention_parts: lse1 and lse2 must be float32 [B, heads]");
}

}  // namespace

at::Tensor merge_attention_parts_reference(const at::Tensor& o1, const at::Tensor& lse1, const at::Tensor& o2,
                                           const at::Tensor& lse2) {
  check_parts(o1, lse1, o2, lse2);
  auto finite1 = at::isfinite(lse1), finite2 = at::isfinite(lse2);
  at::Tensor l1 = at::where(finite1, lse1, -INFINITY), l2 = at::where(finite2, lse2, -INFINITY);
  at::Tensor m = at::maximum(l1, l2);
  m = at::where(at::isfinite(m), m, 0.0);
  at::Tensor w1 = at::exp(l1 - m).unsqueeze(-1), w2 = at::exp(l2 - m).unsqueeze(-1);
  at::Tensor denom = w1 + w2;
  at::Tensor merged = (w1 * o1.to(at::kFloat) + w2 * o2.to(at::kFloat)) / at::where(denom > 0, denom, 1.0);
  return merged.to(o1.scalar_type());
}

at::Tensor merge_attention_parts(const at::Tensor& o1, const at::Tensor& lse1, const at::Tensor& o2,
                                 const at::Tensor& lse2) {
  check_parts(o1, lse1, o2, lse2);
#ifdef MATHRL_HAVE_CUDA_KERNELS
  if (o1.is_cuda() && lse1.is_cuda() && lse2.is_cuda() && o2.is_cuda()) {
    at::Tensor a = o1.contiguous(), b = o2.contiguous();
    at::Tensor out = at::empty_like(a);
    cuda::MergePartsArgs args{};
    args.o1 = a.data_ptr(), args.o2 = b.data_ptr(), args.out = out.data_ptr();
    args.lse1 = lse1.data_ptr<float>(), args.lse2 = lse2.data_ptr<float>();
    args.dtype = cuda::dtype_of(a);
    args.batch = static_cast<int>(a.size(0)), args.heads = static_cast<int>(a.size(1)), args.head_dim = static_cast<int>(a.size(2));
    args.lse1_b_stride = lse1.stride(0), args.lse1_h_stride = lse1.stride(1);
    args.lse2_b_stride = lse2.stride(0), args.lse2_h_stride = lse2.stride(1);
    cuda::launch_merge_attention_parts(args, at::cuda::getCurrentCUDAStream(o1.device().index()).stream());
    cuda::check_launch("merge_attention_parts kernel");
    return out;
  }
#endif
  return merge_attention_parts_reference(o1, lse1, o2, lse2);
}

}  // namespace mathrl::kernels
