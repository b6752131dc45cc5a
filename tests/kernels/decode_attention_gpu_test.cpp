// The CUDA decode-attention kernel against the reference, in each dtype, across chunk boundaries
// (run on the GPU machine: label gpu).
#include <gtest/gtest.h>

#include <vector>

#include <torch/torch.h>

#include "decode_attention.h"
#include "flash_cached_attention.h"

using namespace mathrl::kernels;

TEST(DecodeAttentionGpu, KernelMatchesReference) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no GPU";
  struct Shape {
    int64_t heads, kv, D;
  };
  for (auto shape : {Shape{14, 2, 64}, Shape{8, 8, 128}, Shape{32, 4, 128}, Shape{16, 1, 64}}) {
    for (auto dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
      torch::manual_seed(11);
      const int64_t slots = 6, max_len = 700;
      auto opts = torch::TensorOptions().device(torch::kCUDA).dtype(dtype);
      at::Tensor k = torch::randn({slots, shape.kv, max_len, shape.D}, opts);
      at::Tensor v = torch::randn({slots, shape.kv, max_len, shape.D}, opts);
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
  struct Shape {
    int64_t heads, kv, D;
  };
  for (auto shape : {Shape{14, 2, 64}, Shape{8, 8, 128}, Shape{32, 4, 64}, Shape{16, 1, 128}}) {
    for (auto dtype : {at::kBFloat16, at::kHalf}) {
      for (int64_t T : {1, 5}) {
        torch::manual_seed(13);
        const int64_t slots = 6, max_len = 700;
        auto opts = torch::TensorOptions().device(torch::kCUDA).dtype(dtype);
        at::Tensor k = torch::randn({slots, shape.kv, max_len, shape.D}, opts);
        at::Tensor v = torch::randn({slots, shape.kv, max_len, shape.D}, opts);
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
