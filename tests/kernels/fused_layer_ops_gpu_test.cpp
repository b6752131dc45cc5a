// The fused layer-op CUDA kernels against the ATen references on the same GPU tensors (forward),
// against float64 autograd of the same math (backward), and inside CUDA-graph capture (label gpu).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/torch.h>

#include "fused_layer_ops.h"
#include "token_logprobs.h"

using namespace mathrl::kernels;

#define SKIP_WITHOUT_GPU()                                                        \
  if (!torch::cuda::is_available() || !cuda_kernels_available()) GTEST_SKIP() << "no GPU or no CUDA kernels"

namespace {

constexpr double kEps = 1e-6;
const at::ScalarType kDtypes[] = {at::kFloat, at::kBFloat16, at::kHalf};

// Forward tolerance (rtol = atol): 2 ulps of bf16/fp16, since an rstd one float ulp off (another
// summation order) can move RMSNorm's rounded n by one ulp and then w * n by up to two. Gradient
// tolerance: relative to the gradient's max |.|.
double forward_tol(at::ScalarType t) { return t == at::kFloat ? 1e-5 : t == at::kBFloat16 ? 2e-2 : 4e-3; }
double grad_tol(at::ScalarType t) { return t == at::kFloat ? 1e-4 : t == at::kBFloat16 ? 2e-2 : 5e-3; }

void expect_close(const at::Tensor& got, const at::Tensor& ref, double tol, const std::string& what) {
  ASSERT_EQ(got.sizes(), ref.sizes()) << what;
  ASSERT_EQ(got.scalar_type(), ref.scalar_type()) << what;
  at::Tensor g = got.to(at::kFloat).cpu(), r = ref.to(at::kFloat).cpu();
  EXPECT_FALSE(g.isnan().any().item<bool>()) << what;
  EXPECT_TRUE(at::allclose(g, r, tol, tol)) << what << ": max abs diff " << (g - r).abs().max().item<double>();
}

double exact_fraction(const at::Tensor& got, const at::Tensor& ref) {
  if (got.numel() == 0) return 1.0;
  return got.eq(ref).to(at::kDouble).mean().item<double>();
}

void expect_grad_close(const at::Tensor& got, const at::Tensor& ref64, double tol, const std::string& what) {
  ASSERT_TRUE(got.defined()) << what;
  ASSERT_EQ(got.sizes(), ref64.sizes()) << what;
  at::Tensor g = got.to(at::kDouble).cpu(), r = ref64.cpu();
  double rel = ((g - r).abs().max() / r.abs().max().clamp_min(1e-30)).item<double>();
  EXPECT_LE(rel, tol) << what << ": max |diff| / max |ref| = " << rel;
}

bool node_is(const at::Tensor& y, const char* function) {
  return y.grad_fn() && y.grad_fn()->name().find(function) != std::string::npos;
}

std::string describe(at::ScalarType dtype, at::IntArrayRef sizes) {
  return std::string(c10::toString(dtype)) + " " + c10::str(sizes);
}

// Rotary cos/sin [B, T, D] float32 on the GPU, as RotaryEmbedding::cos_sin makes them.
std::pair<at::Tensor, at::Tensor> rotary(int64_t B, int64_t T, int64_t D) {
  at::Tensor positions = torch::randint(0, 8192, {B, T}, torch::kLong);
  at::Tensor inv = 1.0 / at::pow(10000.0, at::arange(0, D, 2, at::kDouble) / static_cast<double>(D));
  at::Tensor freqs = positions.to(at::kFloat).unsqueeze(-1) * inv.to(at::kFloat);
  at::Tensor emb = at::cat({freqs, freqs}, -1);
  return {emb.cos().cuda(), emb.sin().cuda()};
}

}  // namespace

TEST(FusedLayerOpsGpu, RmsNormMatchesReference) {
  SKIP_WITHOUT_GPU();
  struct Case {
    std::vector<int64_t> sizes;
    int64_t pad;  // extra columns, so rows are strided (x is a narrow of a wider tensor)
  };
  const Case cases[] = {{{1, 64}, 0},        {{3, 37, 2048}, 0}, {{1100, 64}, 0}, {{5, 16384}, 0},
                        {{2, 333, 4096}, 0}, {{7, 100}, 12},     {{2, 9, 2048}, 64}};
  for (const Case& c : cases) {
    for (auto dtype : kDtypes) {
      torch::manual_seed(21);
      const int64_t H = c.sizes.back();
      std::vector<int64_t> full = c.sizes;
      full.back() += c.pad;
      at::Tensor leaf = torch::randn(full).to(torch::kCUDA, dtype).requires_grad_();
      at::Tensor w = (1 + 0.1 * torch::randn({H})).to(torch::kCUDA, dtype).requires_grad_();
      const std::string what = describe(dtype, c.sizes) + " pad " + std::to_string(c.pad);

      at::Tensor x = leaf.narrow(-1, 0, H);
      at::Tensor y_nograd;
      {
        torch::NoGradGuard no_grad;
        y_nograd = rms_norm(x, w, kEps);
        expect_close(y_nograd, rms_norm_reference(x, w, kEps), forward_tol(dtype), "rms_norm forward " + what);
      }
      at::Tensor y = rms_norm(x, w, kEps);
      EXPECT_TRUE(node_is(y, "RmsNormFunction")) << what;
      EXPECT_TRUE(torch::equal(y.detach(), y_nograd)) << what;
      at::Tensor g = torch::randn(c.sizes).to(torch::kCUDA, dtype);
      y.backward(g);

      at::Tensor x64 = x.detach().to(at::kDouble).requires_grad_(), w64 = w.detach().to(at::kDouble).requires_grad_();
      at::Tensor y64 = w64 * (x64 * at::rsqrt(x64.pow(2).mean(-1, true) + kEps));
      y64.backward(g.to(at::kDouble));
      expect_grad_close(leaf.grad().narrow(-1, 0, H), x64.grad(), grad_tol(dtype), "rms_norm dx " + what);
      expect_grad_close(w.grad(), w64.grad(), grad_tol(dtype), "rms_norm dweight " + what);
      if (c.pad > 0) EXPECT_EQ(leaf.grad().narrow(-1, H, c.pad).abs().max().item<double>(), 0.0) << what;
    }
  }
}

TEST(FusedLayerOpsGpu, RmsNormWeightWithoutGradAndFallbacks) {
  SKIP_WITHOUT_GPU();
  torch::manual_seed(22);
  at::Tensor x = torch::randn({6, 256}).to(torch::kCUDA, at::kBFloat16).requires_grad_();
  at::Tensor w = (1 + 0.1 * torch::randn({256})).to(torch::kCUDA, at::kBFloat16);  // frozen
  at::Tensor y = rms_norm(x, w, kEps);
  EXPECT_TRUE(node_is(y, "RmsNormFunction"));
  at::Tensor g = torch::randn({6, 256}).to(torch::kCUDA, at::kBFloat16);
  y.backward(g);
  at::Tensor x64 = x.detach().to(at::kDouble).requires_grad_();
  (w.to(at::kDouble) * (x64 * at::rsqrt(x64.pow(2).mean(-1, true) + kEps))).backward(g.to(at::kDouble));
  expect_grad_close(x.grad(), x64.grad(), grad_tol(at::kBFloat16), "rms_norm dx, frozen weight");

  // A float32 weight on bf16 x is not fused: the reference (and its float32 result) comes back.
  torch::NoGradGuard no_grad;
  at::Tensor w32 = w.to(at::kFloat);
  EXPECT_TRUE(torch::equal(rms_norm(x, w32, kEps), rms_norm_reference(x, w32, kEps)));
  // A last dim that is not contiguous is not fused either.
  at::Tensor xt = torch::randn({256, 6}).to(torch::kCUDA, at::kBFloat16).t();
  EXPECT_TRUE(torch::equal(rms_norm(xt, w, kEps), rms_norm_reference(xt, w, kEps)));
}

TEST(FusedLayerOpsGpu, RopeMatchesReference) {
  SKIP_WITHOUT_GPU();
  struct Case {
    int64_t B, T, heads, kv_heads, D;
  };
  const Case cases[] = {{2, 5, 3, 1, 64}, {1, 33, 4, 2, 128}, {3, 70, 8, 2, 64}, {2, 17, 32, 8, 128}, {1, 3, 2, 2, 8}};
  for (const Case& c : cases) {
    for (auto dtype : kDtypes) {
      torch::manual_seed(31);
      auto [cos, sin] = rotary(c.B, c.T, c.D);
      const int64_t W = (c.heads + 2 * c.kv_heads) * c.D;
      at::Tensor qkv = torch::randn({c.B, c.T, W}).to(torch::kCUDA, dtype).requires_grad_();
      // The three layouts: q and k as strided slices of the fused projection, and a transposed
      // [B, heads, T, D] tensor.
      struct Layout {
        const char* name;
        at::Tensor x;
      };
      at::Tensor bhtd = torch::randn({c.B, c.heads, c.T, c.D}).to(torch::kCUDA, dtype).requires_grad_();
      const Layout layouts[] = {
          {"q slice", qkv.narrow(2, 0, c.heads * c.D).view({c.B, c.T, c.heads, c.D})},
          {"k slice", qkv.narrow(2, c.heads * c.D, c.kv_heads * c.D).view({c.B, c.T, c.kv_heads, c.D})},
          {"transposed", bhtd.transpose(1, 2)},
      };
      for (const Layout& l : layouts) {
        const std::string what = describe(dtype, l.x.sizes()) + " " + l.name;
        ASSERT_EQ(l.x.stride(3), 1) << what;
        at::Tensor y_nograd;
        {
          torch::NoGradGuard no_grad;
          y_nograd = rope(l.x, cos, sin);
          at::Tensor ref = rope_reference(l.x, cos, sin);
          EXPECT_TRUE(y_nograd.is_contiguous()) << what;
          expect_close(y_nograd, ref, forward_tol(dtype), "rope forward " + what);
          EXPECT_GE(exact_fraction(y_nograd, ref), 0.99) << "rope forward " << what;
        }
        at::Tensor y = rope(l.x, cos, sin);
        EXPECT_TRUE(node_is(y, "RopeFunction")) << what;
        EXPECT_TRUE(torch::equal(y.detach(), y_nograd)) << what;
        at::Tensor g = torch::randn(y.sizes()).to(torch::kCUDA, dtype);
        at::Tensor dx = torch::autograd::grad({y}, {l.x}, {g})[0];

        // float64 autograd with cos/sin as rounded to x's dtype, which is what the op multiplies by.
        at::Tensor x64 = l.x.detach().to(at::kDouble).requires_grad_();
        at::Tensor c64 = cos.to(dtype).to(at::kDouble), s64 = sin.to(dtype).to(at::kDouble);
        rope_reference(x64, c64, s64).backward(g.to(at::kDouble));
        expect_grad_close(dx, x64.grad(), grad_tol(dtype), "rope dx " + what);
      }
    }
  }
}

TEST(FusedLayerOpsGpu, SwigluMatchesReference) {
  SKIP_WITHOUT_GPU();
  const std::vector<int64_t> cases[] = {{1, 128}, {5, 6}, {3, 37, 2000}, {4, 2 * 11008}, {2, 7, 4096}, {300, 2 * 96}};
  for (const auto& sizes : cases) {
    for (auto dtype : kDtypes) {
      torch::manual_seed(41);
      const std::string what = describe(dtype, sizes);
      at::Tensor gu = (torch::randn(sizes) * 2).to(torch::kCUDA, dtype).requires_grad_();
      at::Tensor y_nograd;
      {
        torch::NoGradGuard no_grad;
        y_nograd = swiglu(gu);
        at::Tensor ref = swiglu_reference(gu);
        expect_close(y_nograd, ref, forward_tol(dtype), "swiglu forward " + what);
        EXPECT_GE(exact_fraction(y_nograd, ref), 0.99) << "swiglu forward " << what;
      }
      at::Tensor y = swiglu(gu);
      EXPECT_TRUE(node_is(y, "SwigluFunction")) << what;
      EXPECT_TRUE(torch::equal(y.detach(), y_nograd)) << what;
      at::Tensor g = torch::randn(y.sizes()).to(torch::kCUDA, dtype);
      y.backward(g);

      at::Tensor gu64 = gu.detach().to(at::kDouble).requires_grad_();
      swiglu_reference(gu64).backward(g.to(at::kDouble));
      expect_grad_close(gu.grad(), gu64.grad(), grad_tol(dtype), "swiglu dgate_up " + what);
    }
  }
}

TEST(FusedLayerOpsGpu, RunsInsideCudaGraphCapture) {
  SKIP_WITHOUT_GPU();
  torch::NoGradGuard no_grad;
  torch::manual_seed(51);
  const auto bf16 = torch::TensorOptions().device(torch::kCUDA).dtype(at::kBFloat16);
  at::Tensor x = torch::randn({4, 9, 512}, bf16), w = torch::randn({512}, bf16);
  at::Tensor qkv = torch::randn({2, 5, (4 + 2 * 2) * 64}, bf16);
  at::Tensor q = qkv.narrow(2, 0, 4 * 64).view({2, 5, 4, 64});
  auto [cos, sin] = rotary(2, 5, 64);
  at::Tensor gu = torch::randn({4, 9, 2 * 300}, bf16);
  auto run = [&] { return std::vector<at::Tensor>{rms_norm(x, w, kEps), rope(q, cos, sin), swiglu(gu)}; };

  std::vector<at::Tensor> eager = run(), captured;
  at::cuda::CUDAGraph graph;
  auto side = c10::cuda::getStreamFromPool();
  torch::cuda::synchronize();
  {
    c10::cuda::CUDAStreamGuard guard(side);
    run();  // warm up on the capture stream
    side.synchronize();
    graph.capture_begin();
    captured = run();
    graph.capture_end();
  }
  side.synchronize();
  graph.replay();
  torch::cuda::synchronize();
  for (size_t i = 0; i < eager.size(); ++i) EXPECT_TRUE(torch::equal(captured[i], eager[i])) << "output " << i;

  // New inputs written in place: a replay recomputes from them.
  x.copy_(torch::randn({4, 9, 512}, bf16));
  qkv.copy_(torch::randn({2, 5, (4 + 2 * 2) * 64}, bf16));
  gu.copy_(torch::randn({4, 9, 2 * 300}, bf16));
  eager = run();
  graph.replay();
  torch::cuda::synchronize();
  for (size_t i = 0; i < eager.size(); ++i) EXPECT_TRUE(torch::equal(captured[i], eager[i])) << "output " << i << ", replay 2";
}
