#include "flash_cached_attention.h"

#include <cstdlib>
#include <cstring>
#include <optional>

#include "common/error.h"

namespace mathrl::kernels {

namespace {

// Read once: the check runs in every attention layer of every forward.
bool enabled_by_env() {
  static const bool enabled = [] {
    const char* v = std::getenv("MATHRL_FLASH_DECODE");
    return !(v && std::strcmp(v, "0") == 0);
  }();
  return enabled;
}

}  // namespace

bool flash_cached_attention_supported(at::ScalarType q_dtype, int64_t heads, const at::Tensor& k_cache) {
  if (!k_cache.defined() || !k_cache.is_cuda() || k_cache.dim() != 4) return false;
  const int64_t kv_heads = k_cache.size(1), D = k_cache.size(3);
  return (q_dtype == at::kBFloat16 || q_dtype == at::kHalf) && k_cache.scalar_type() == q_dtype &&
         k_cache.is_contiguous() && D % 8 == 0 && D <= 256 && heads % kv_heads == 0 && enabled_by_env();
}

at::Tensor flash_cached_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                                  const at::Tensor& slots, const at::Tensor& last, double scale,
                                  const SharedPrefix& prefix) {
  MATHRL_CHECK(q.dim() == 4 && k_cache.dim() == 4 && k_cache.sizes() == v_cache.sizes() && v_cache.is_contiguous(),
               "flash_cached_attention: q [B, T, heads, D], caches [slots, kv_heads, max_len, D]");
  MATHRL_CHECK(flash_cached_attention_supported(q.scalar_type(), q.size(2), k_cache),
               "flash_cached_attention: unsupported dtype, head_dim or device");
  const int64_t B = q.size(0), T = q.size(1), heads = q.size(2), D = q.size(3);
  const int64_t S = k_cache.size(0), kv_heads = k_cache.size(1), max_len = k_cache.size(2);
  MATHRL_CHECK(slots.dim() == 1 && last.dim() == 1 && slots.size(0) == B && last.size(0) == B,
               "flash_cached_attention: slots and last must be [B]");
  MATHRL_CHECK(S * kv_heads * max_len < (int64_t{1} << 31), "flash_cached_attention: cache too large for int32 offsets");
  // Rows of D elements; row r of head h sits at r * D + h * max_len * D. The last slot's last
  // head ends exactly at the cache's end, so the view never reaches outside it.
  const int64_t rows = (S - 1) * kv_heads * max_len + max_len;
  at::Tensor k_rows = k_cache.as_strided({rows, kv_heads, D}, {D, max_len * D, 1});
  at::Tensor v_rows = v_cache.as_strided({rows, kv_heads, D}, {D, max_len * D, 1});
  auto i32 = q.options().dtype(at::kInt);
  at::Tensor cu_q = at::arange(0, (B + 1) * T, T, i32);
  at::Tensor q_rows = q.reshape({B * T, heads, D});
  if (q_rows.stride(-1) != 1) q_rows = q_rows.contiguous();
  // Keys of row b: `count[b]` rows from row `start[b]` of the view (slot * kv_heads * max_len + position).
  auto attend = [&](const at::Tensor& start, const at::Tensor& count) {
    at::Tensor cu_k = at::cat({start.to(at::kInt), at::full({1}, rows, i32)});
    return at::_flash_attention_forward(q_rows, k_rows, v_rows, cu_q, cu_k, T, max_len, 0.0, /*is_causal=*/T > 1,
                                        /*return_debug_mask=*/false, std::optional<double>(scale), std::nullopt,
                                        std::nullopt, count.to(at::kInt).contiguous(), std::nullopt);
  };
  const at::Tensor slot_rows = slots.to(at::kLong) * (kv_heads * max_len), used = last.to(at::kLong) + 1;
  if (!prefix.defined()) return std::get<0>(attend(slot_rows, used)).view({B, T, heads, D});
  MATHRL_CHECK(T == 1, "flash_cached_attention: a shared prefix needs one new token per row (decode)");
  const at::Tensor shared = at::minimum(prefix.len.to(at::kLong), used);
  auto in_prefix = attend(prefix.slot.to(at::kLong) * (kv_heads * max_len), shared);
  auto own = attend(slot_rows + shared, used - shared);
  // Varlen FlashAttention returns the log-sum-exp as [heads, total_q] (total_q = B here).
  auto lse = [&](const at::Tensor& l) {
    MATHRL_CHECK(l.dim() == 2 && l.size(0) == heads && l.size(1) == B, "flash_cached_attention: unexpected lse shape ",
                 l.sizes());
    return l.t();
  };
  at::Tensor out = merge_attention_parts(std::get<0>(in_prefix).view({B, heads, D}), lse(std::get<1>(in_prefix)),
                                         std::get<0>(own).view({B, heads, D}), lse(std::get<1>(own)));
  return out.view({B, T, heads, D});
}

}  // namespace mathrl::kernels
