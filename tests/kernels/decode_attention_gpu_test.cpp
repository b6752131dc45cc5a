// The CUDA decode-attention kernel against the reference, in each dtype, across chunk boundaries
// (run on the GPU machine: label gpu).
#include <gtest/gtest.h>

#include <vector>

#include <torch/torch.h>

#include "decode_attention.h"
#include "flash_cached_attention.h"

using namespace mathrl::kernels;

namespace {

struct Shape {
  int64_t heads, kv, D;
};

// Random keys and values [slots, kv, max_len, D] on the GPU.
std::pair<at::Tensor, at::Tensor> random_caches(const Shape& shape, int64_t slots, int64_t max_len, at::ScalarType dtype) {
  auto opts = torch::TensorOptions().device(torch::kCUDA).dtype(dtype);
  return {torch::randn({slots, shape.kv, max_len, shape.D}, opts), torch::randn({slots, shape.kv, max_len, shape.D}, opts)};
}

}  // namespace

TEST(DecodeAttentionGpu, KernelMatchesReference) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no GPU";
  for (auto shape : {Shape{14, 2, 64}, Shape{8, 8, 128}, Shape{32, 4, 128}, Shape{16, 1, 64}}) {
    for (auto dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
      torch::manual_seed(11);
      auto [k, v] = random_caches(shape, 6, 700, dtype);
      auto opts = torch::TensorOptions().device(torch::kCUDA).dtype(dtype);
      std::vector<int64_t> slot_ids = {0, 5, 2, 2, 1, 3, 4}, pos = {0, 255, 256, 257, 511, 699, 100};
      at::Tensor q = torch::randn({static_cast<int64_t>(pos.size()), shape.heads, shape.D}, opts);
      auto s = torch::tensor(slot_ids).cuda(), p = torch::tensor(pos).cuda();
      ASSERT_TRUE(decode_attention_uses_kernel(dtype, shape.heads, k));
      at::Tensor got = decode_attention(q, k, v, s, p, 0.125).to(at::kFloat).cpu();
      at::Tensor want = decode_attention_reference(q, k, v, s, p, 0.125).to(at::kFloat).cpu();
      double err = (got - want).abs().max().item<double>();
      EXPECT_LT(err, dtype == at::kFloat ? 1e-4 : 3e-2) << "heads " << shape.heads << " kv " << shape.kv << " D " << shape.D << " " << dtype;
    }
  }
}

// FlashAttention over the cache in place: decode (T = 1) and prefill-like rows of T tokens ending
// at `last`, each token causal over its slot, against the per-token reference.
TEST(DecodeAttentionGpu, FlashCachedAttentionMatchesReference) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no GPU";
  for (auto shape : {Shape{14, 2, 64}, Shape{8, 8, 128}, Shape{32, 4, 64}, Shape{16, 1, 128}}) {
    for (auto dtype : {at::kBFloat16, at::kHalf}) {
      for (int64_t T : {1, 5}) {
        torch::manual_seed(13);
        auto [k, v] = random_caches(shape, 6, 700, dtype);
        auto opts = torch::TensorOptions().device(torch::kCUDA).dtype(dtype);
        std::vector<int64_t> slot_ids = {0, 5, 2, 1, 3, 4}, last = {4, 255, 256, 511, 699, 100};
        const auto B = static_cast<int64_t>(slot_ids.size());
        ASSERT_TRUE(flash_cached_attention_supported(dtype, shape.heads, k));
        at::Tensor q = torch::randn({B, T, shape.heads, shape.D}, opts);
        at::Tensor got = flash_cached_attention(q, k, v, torch::tensor(slot_ids).cuda(), torch::tensor(last).cuda(), 0.125);
        ASSERT_EQ(got.sizes(), q.sizes());
        std::vector<int64_t> token_slot, token_pos;
        for (int64_t b = 0; b < B; ++b)
          for (int64_t t = 0; t < T; ++t) token_slot.push_back(slot_ids[b]), token_pos.push_back(last[b] - T + 1 + t);
        at::Tensor want = decode_attention_reference(q.reshape({B * T, shape.heads, shape.D}), k, v,
                                                     torch::tensor(token_slot).cuda(), torch::tensor(token_pos).cuda(), 0.125);
        double err = (got.reshape({B * T, shape.heads, shape.D}).to(at::kFloat) - want.to(at::kFloat)).abs().max().item<double>();
        EXPECT_LT(err, 3e-2) << "heads " << shape.heads << " kv " << shape.kv << " D " << shape.D << " T " << T << " " << dtype;
      }
    }
  }
}

// Shared prompt prefixes: the decode kernel and the two-part FlashAttention path (prefix slot, own
// slot, merged by log-sum-exp) against the reference, with prefixes shorter than, equal to and
// across the chunk boundary, and one row without a prefix.
TEST(DecodeAttentionGpu, SharedPrefixMatchesReference) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no GPU";
  for (auto shape : {Shape{14, 2, 64}, Shape{32, 4, 128}}) {
    for (auto dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
      torch::manual_seed(17);
      auto [k, v] = random_caches(shape, 7, 700, dtype);
      auto opts = torch::TensorOptions().device(torch::kCUDA).dtype(dtype);
      std::vector<int64_t> slot_ids = {1, 2, 3, 4, 5, 6}, pos = {300, 301, 257, 699, 40, 5};
      std::vector<int64_t> src = {0, 0, 0, 4, 0, 6}, len = {256, 256, 100, 260, 40, 1};
      const auto B = static_cast<int64_t>(slot_ids.size());
      at::Tensor q = torch::randn({B, shape.heads, shape.D}, opts);
      auto s = torch::tensor(slot_ids).cuda(), p = torch::tensor(pos).cuda();
      SharedPrefix prefix{torch::tensor(src).cuda(), torch::tensor(len).cuda()};
      at::Tensor want = decode_attention_reference(q, k, v, s, p, 0.125, prefix).to(at::kFloat).cpu();
      at::Tensor unshared = decode_attention_reference(q, k, v, s, p, 0.125).to(at::kFloat).cpu();
      ASSERT_GT((want - unshared).abs().max().item<double>(), 0.05);  // the prefix matters here
      const double tol = dtype == at::kFloat ? 1e-4 : 3e-2;
      at::Tensor got = decode_attention(q, k, v, s, p, 0.125, prefix).to(at::kFloat).cpu();
      EXPECT_LT((got - want).abs().max().item<double>(), tol) << "kernel " << dtype << " heads " << shape.heads;
      if (dtype == at::kFloat) continue;
      ASSERT_TRUE(flash_cached_attention_supported(dtype, shape.heads, k));
      at::Tensor flash = flash_cached_attention(q.unsqueeze(1), k, v, s, p, 0.125, prefix).squeeze(1).to(at::kFloat).cpu();
      EXPECT_LT((flash - want).abs().max().item<double>(), tol) << "flash " << dtype << " heads " << shape.heads;
    }
  }
}

TEST(DecodeAttentionGpu, MergeKernelMatchesReference) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no GPU";
  torch::manual_seed(19);
  for (auto dtype : {at::kFloat, at::kBFloat16}) {
    auto opts = torch::TensorOptions().device(torch::kCUDA);
    at::Tensor o1 = torch::randn({37, 14, 64}, opts.dtype(dtype)), o2 = torch::randn({37, 14, 64}, opts.dtype(dtype));
    at::Tensor l1 = torch::randn({14, 37}, opts) * 3, l2 = torch::randn({14, 37}, opts) * 3;  // FlashAttention's layout
    l1.index_put_({0}, INFINITY);  // an empty part in head 0
    at::Tensor got = merge_attention_parts(o1, l1.t(), o2, l2.t()).to(at::kFloat).cpu();
    at::Tensor want = merge_attention_parts_reference(o1.cpu(), l1.t().cpu(), o2.cpu(), l2.t().cpu()).to(at::kFloat);
    EXPECT_LT((got - want).abs().max().item<double>(), dtype == at::kFloat ? 1e-5 : 2e-2) << dtype;
  }
}
