// The decode-attention reference path (what CPU runs and the CUDA kernel is checked against)
// against attention written out with plain loops in double.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include <torch/torch.h>

#include "cpu_isa.h"
#include "decode_attention.h"
#include "flash_cached_attention.h"

using namespace mathrl::kernels;

TEST(DecodeAttention, ReferenceMatchesPlainLoops) {
  torch::manual_seed(5);
  const int64_t slots = 5, kv = 2, heads = 6, max_len = 40, D = 8, B = 4;
  at::Tensor k = torch::randn({slots, kv, max_len, D}), v = torch::randn({slots, kv, max_len, D});
  at::Tensor q = torch::randn({B, heads, D});
  std::vector<int64_t> slot_ids = {3, 0, 3, 4}, pos = {0, 17, 39, 5};
  const double scale = 0.35;
  at::Tensor out = decode_attention(q, k, v, torch::tensor(slot_ids), torch::tensor(pos), scale);
  ASSERT_EQ(out.sizes(), q.sizes());
  auto ka = k.accessor<float, 4>(), va = v.accessor<float, 4>();
  auto qa = q.accessor<float, 3>();
  auto oa = out.accessor<float, 3>();
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t g = h / (heads / kv);  // the KV head of this query head
      std::vector<double> s(pos[b] + 1);
      double top = -1e300;
      for (int64_t t = 0; t <= pos[b]; ++t) {
        double dot = 0;
        for (int64_t d = 0; d < D; ++d) dot += double(qa[b][h][d]) * ka[slot_ids[b]][g][t][d];
        s[t] = dot * scale;
        top = std::max(top, s[t]);
      }
      double z = 0;
      for (double& x : s) z += (x = std::exp(x - top));
      for (int64_t d = 0; d < D; ++d) {
        double acc = 0;
        for (int64_t t = 0; t <= pos[b]; ++t) acc += s[t] / z * va[slot_ids[b]][g][t][d];
        EXPECT_NEAR(oa[b][h][d], acc, 1e-5) << "b " << b << " h " << h << " d " << d;
      }
    }
  }
}

TEST(DecodeAttention, RejectsPositionsOutsideTheCache) {
  at::Tensor k = torch::zeros({2, 1, 4, 8}), q = torch::zeros({1, 1, 8});
  EXPECT_ANY_THROW(decode_attention(q, k, k, torch::tensor(std::vector<int64_t>{0}), torch::tensor(std::vector<int64_t>{4}), 1.0));
  EXPECT_ANY_THROW(decode_attention(q, k, k, torch::tensor(std::vector<int64_t>{2}), torch::tensor(std::vector<int64_t>{0}), 1.0));
}

// FlashAttention over the cache is CUDA-only: on CPU (and in float32) the model keeps the reference.
TEST(DecodeAttention, FlashPathIsNotTakenOnCpuOrInFloat32) {
  at::Tensor bf16 = torch::zeros({2, 1, 4, 8}, torch::kBFloat16), f32 = torch::zeros({2, 1, 4, 8});
  EXPECT_FALSE(flash_cached_attention_supported(at::kBFloat16, 2, bf16));
  EXPECT_FALSE(flash_cached_attention_supported(at::kFloat, 2, f32));
  EXPECT_ANY_THROW(flash_cached_attention(torch::zeros({1, 1, 2, 8}, torch::kBFloat16), bf16, bf16,
                                          torch::tensor(std::vector<int64_t>{0}), torch::tensor(std::vector<int64_t>{0}), 1.0));
}

// A shared prefix reads positions [0, len) from another slot: the same as attention over a cache
// where those rows were copied into the row's own slot.
TEST(DecodeAttention, SharedPrefixEqualsCopiedPrefix) {
  torch::manual_seed(8);
  const int64_t slots = 5, kv = 2, heads = 4, max_len = 30, D = 8;
  at::Tensor k = torch::randn({slots, kv, max_len, D}), v = torch::randn({slots, kv, max_len, D});
  std::vector<int64_t> slot_ids = {1, 2, 3, 0}, pos = {12, 20, 9, 4}, src = {0, 0, 3, 0}, len = {7, 7, 9, 0};
  at::Tensor q = torch::randn({4, heads, D});
  SharedPrefix prefix{torch::tensor(src), torch::tensor(len)};
  at::Tensor got = decode_attention(q, k, v, torch::tensor(slot_ids), torch::tensor(pos), 0.3, prefix);
  at::Tensor kc = k.clone(), vc = v.clone();
  for (size_t b = 0; b < slot_ids.size(); ++b) {
    kc[slot_ids[b]].narrow(1, 0, len[b]).copy_(k[src[b]].narrow(1, 0, len[b]));
    vc[slot_ids[b]].narrow(1, 0, len[b]).copy_(v[src[b]].narrow(1, 0, len[b]));
  }
  at::Tensor want = decode_attention(q, kc, vc, torch::tensor(slot_ids), torch::tensor(pos), 0.3);
  EXPECT_TRUE(torch::allclose(got, want, 1e-6, 1e-6));
  EXPECT_FALSE(torch::allclose(got, decode_attention(q, k, v, torch::tensor(slot_ids), torch::tensor(pos), 0.3), 1e-3, 1e-3));
}

// Attention over keys A then over keys B, merged by their log-sum-exps, equals attention over A
// and B together; an empty part (lse +inf, as FlashAttention reports one) drops out.
TEST(DecodeAttention, MergedPartsEqualAttentionOverTheUnion) {
  torch::manual_seed(9);
  const int64_t B = 3, heads = 2, D = 4, n1 = 5, n2 = 7;
  at::Tensor q = torch::randn({B, heads, 1, D}, torch::kDouble);
  at::Tensor k = torch::randn({B, heads, n1 + n2, D}, torch::kDouble), v = torch::randn({B, heads, n1 + n2, D}, torch::kDouble);
  auto attend = [&](int64_t from, int64_t n) {
    at::Tensor s = at::matmul(q, k.narrow(2, from, n).transpose(-1, -2));  // [B, heads, 1, n]
    at::Tensor lse = at::logsumexp(s, -1).squeeze(-1);
    return std::make_pair(at::matmul(at::softmax(s, -1), v.narrow(2, from, n)).squeeze(2), lse);
  };
  auto [o1, l1] = attend(0, n1);
  auto [o2, l2] = attend(n1, n2);
  auto [all, unused] = attend(0, n1 + n2);
  at::Tensor merged = merge_attention_parts(o1.to(at::kFloat), l1.to(at::kFloat), o2.to(at::kFloat), l2.to(at::kFloat));
  EXPECT_TRUE(torch::allclose(merged.to(at::kDouble), all, 1e-5, 1e-5));
  at::Tensor empty = torch::full({B, heads}, INFINITY);
  at::Tensor alone = merge_attention_parts(torch::zeros({B, heads, D}), empty, o2.to(at::kFloat), l2.to(at::kFloat));
  EXPECT_TRUE(torch::allclose(alone.to(at::kDouble), o2, 1e-6, 1e-6));
  EXPECT_ANY_THROW(merge_attention_parts(o1.to(at::kFloat), l1.to(at::kFloat).t(), o2.to(at::kFloat), l2.to(at::kFloat)));
}

// The CPU loop (kernels/decode_attention_cpu) against the ATen reference, on every instruction set
// the machine has: a head size that is not a multiple of its 8- and 16-wide pieces (the generic
// loop), head sizes the AVX2 and AVX-512 blocks take (8, 16, 32, 128: keys in blocks of 8 or 16
// with partial last blocks), three query heads per KV head, a shared prefix, float32 and bf16, a
// strided q; and the same bits at one thread and at several (each (row, KV head) pair is summed in
// one fixed order).
TEST(DecodeAttention, CpuLoopMatchesTheReferenceAtAnyThreadCount) {
  torch::manual_seed(12);
  const int64_t slots = 6, kv = 2, heads = 6, max_len = 50;
  std::vector<int64_t> slot_ids = {1, 2, 3, 5, 4}, pos = {12, 49, 9, 30, 0}, src = {0, 0, 3, 0, 4}, len = {7, 20, 10, 7, 0};
  for (auto isa : {cpu::CpuIsa::baseline, cpu::CpuIsa::avx2, cpu::CpuIsa::avx512}) {
  if (static_cast<int>(isa) > static_cast<int>(cpu::detected_cpu_isa())) continue;
  SCOPED_TRACE("isa " + std::to_string(static_cast<int>(isa)));
  const cpu::CpuIsa previous = cpu::limit_cpu_isa(isa);
  for (int64_t D : {36, 8, 16, 32, 128})
  for (auto dtype : {at::kFloat, at::kBFloat16}) {
    SCOPED_TRACE("head size " + std::to_string(D));
    at::Tensor k = torch::randn({slots, kv, max_len, D}).to(dtype), v = torch::randn({slots, kv, max_len, D}).to(dtype);
    at::Tensor q = torch::randn({5, D, heads}).to(dtype).transpose(1, 2);  // [B, heads, D], not contiguous
    SharedPrefix prefix{torch::tensor(src), torch::tensor(len)};
    const at::Tensor s = torch::tensor(slot_ids), p = torch::tensor(pos);
    ASSERT_TRUE(decode_attention_in_place(dtype, heads, k));
    at::Tensor got = decode_attention(q, k, v, s, p, 0.2, prefix);
    at::Tensor want = decode_attention_reference(q, k, v, s, p, 0.2, prefix);
    const double tol = dtype == at::kFloat ? 1e-5 : 2e-2;
    EXPECT_TRUE(torch::allclose(got.to(at::kFloat), want.to(at::kFloat), tol, tol)) << dtype;
    const int threads = at::get_num_threads();
    at::set_num_threads(1);
    at::Tensor one = decode_attention(q, k, v, s, p, 0.2, prefix);
    at::set_num_threads(std::max(threads, 2));
    at::Tensor many = decode_attention(q, k, v, s, p, 0.2, prefix);
    at::set_num_threads(threads);
    EXPECT_TRUE(torch::equal(one, many)) << dtype;
  }
  cpu::limit_cpu_isa(previous);
  }
  // A non-contiguous cache is not read in place (the reference serves it).
  at::Tensor strided = torch::randn({slots, max_len, kv, 32}).transpose(1, 2);
  EXPECT_FALSE(decode_attention_in_place(at::kFloat, heads, strided));
}
