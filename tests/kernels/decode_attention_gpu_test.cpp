// The CUDA decode-attention kernel against the reference, in each dtype, across chunk boundaries
// (run on the GPU machine: label gpu).
#include <gtest/gtest.h>

#include <vector>

#include <torch/torch.h>

#include "decode_attention.h"

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
