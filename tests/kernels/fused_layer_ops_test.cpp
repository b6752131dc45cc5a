// The fused layer ops on CPU: the dispatchers equal the ATen references, the references equal
// float64 math (and, in bf16/fp16, the per-step rounding the CUDA forward kernels mirror), and the
// backward formulas the CUDA kernels implement equal autograd through the references.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>

#include <torch/torch.h>

#include "common/error.h"
#include "cpu_isa.h"
#include "fused_layer_ops.h"

using namespace mathrl;
using namespace mathrl::kernels;

namespace {

constexpr double kEps = 1e-6;

// max |a - b| / max |b|, in float64.
double max_rel(const at::Tensor& a, const at::Tensor& b) {
  at::Tensor a64 = a.to(at::kDouble), b64 = b.to(at::kDouble);
  return ((a64 - b64).abs().max() / b64.abs().max().clamp_min(1e-30)).item<double>();
}

// Rotary cos/sin [B, T, D] float32 as RotaryEmbedding::cos_sin makes them, at random positions.
std::pair<at::Tensor, at::Tensor> rotary(int64_t B, int64_t T, int64_t D) {
  at::Tensor positions = torch::randint(0, 4096, {B, T}, torch::kLong);
  at::Tensor inv = 1.0 / at::pow(10000.0, at::arange(0, D, 2, at::kDouble) / static_cast<double>(D));
  at::Tensor freqs = positions.to(at::kFloat).unsqueeze(-1) * inv.to(at::kFloat);
  at::Tensor emb = at::cat({freqs, freqs}, -1);
  return {emb.cos(), emb.sin()};
}

// ---- float64 forms of the math (x, w, g, cos, sin in float64) ----

at::Tensor rms_norm_f64(const at::Tensor& x, const at::Tensor& w, double eps) {
  return w * (x * at::rsqrt(x.pow(2).mean(-1, true) + eps));
}

// The RMSNorm backward the CUDA kernel computes: dx = r * (g*w - n * mean(g*w*n)), dw = sum g * n.
std::pair<at::Tensor, at::Tensor> rms_norm_backward_f64(const at::Tensor& x, const at::Tensor& w, const at::Tensor& g,
                                                         double eps) {
  at::Tensor r = at::rsqrt(x.pow(2).mean(-1, true) + eps), n = x * r, gw = g * w;
  at::Tensor dx = r * (gw - n * (gw * n).mean(-1, true));
  at::Tensor dw = (g * n).reshape({-1, x.size(-1)}).sum(0);
  return {dx, dw};
}

// Splits the last dim in halves.
std::pair<at::Tensor, at::Tensor> halves(const at::Tensor& t) {
  const int64_t half = t.size(-1) / 2;
  return {t.narrow(-1, 0, half), t.narrow(-1, half, half)};
}

// y1 = x1*c1 - x2*s1, y2 = x2*c2 + x1*s2 (cos/sin broadcast over heads).
at::Tensor rope_f64(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  auto [x1, x2] = halves(x);
  auto [c1, c2] = halves(cos.unsqueeze(2));
  auto [s1, s2] = halves(sin.unsqueeze(2));
  return at::cat({x1 * c1 - x2 * s1, x2 * c2 + x1 * s2}, -1);
}

// The RoPE backward the CUDA kernel computes: dx1 = g1*c1 + g2*s2, dx2 = g2*c2 - g1*s1.
at::Tensor rope_backward_f64(const at::Tensor& g, const at::Tensor& cos, const at::Tensor& sin) {
  auto [g1, g2] = halves(g);
  auto [c1, c2] = halves(cos.unsqueeze(2));
  auto [s1, s2] = halves(sin.unsqueeze(2));
  return at::cat({g1 * c1 + g2 * s2, g2 * c2 - g1 * s1}, -1);
}

at::Tensor swiglu_f64(const at::Tensor& gate_up) {
  auto [a, b] = halves(gate_up);
  return a / (1 + at::exp(-a)) * b;
}

// The SwiGLU backward the CUDA kernel computes: d_gate = g*b*sig*(1 + a*(1 - sig)), d_up = g*silu(a).
at::Tensor swiglu_backward_f64(const at::Tensor& gate_up, const at::Tensor& g) {
  auto [a, b] = halves(gate_up);
  at::Tensor sig = 1 / (1 + at::exp(-a));
  return at::cat({g * b * sig * (1 + a * (1 - sig)), g * a * sig}, -1);
}

}  // namespace

TEST(FusedLayerOps, EnabledByDefault) {
  const char* v = std::getenv("MATHRL_FUSED_LAYER_OPS");
  if (v && std::strcmp(v, "0") == 0) GTEST_SKIP() << "MATHRL_FUSED_LAYER_OPS=0 is set";
  EXPECT_TRUE(fused_layer_ops_enabled());
}

// On the CPU, dtypes other than float32 take the reference itself; float32 calls take the CPU loops
// (kernels/fused_layer_ops_cpu, with autograd Functions when a gradient is needed), which agree
// with it to rounding.
TEST(FusedLayerOps, CpuDispatchEqualsTheReference) {
  for (auto dtype : {at::kFloat, at::kBFloat16, at::kHalf, at::kDouble}) {
    for (bool grad : {true, false}) {
      torch::manual_seed(3);
      at::Tensor x = torch::randn({3, 5, 96}).to(dtype), w = (1 + 0.1 * torch::randn({96})).to(dtype);
      auto [cos, sin] = rotary(2, 5, 16);
      // A slice of a fused qkv projection: q of 3 heads out of (3 + 2 * 1) heads of 16.
      at::Tensor qkv = torch::randn({2, 5, 5 * 16}).to(dtype);
      at::Tensor gu = torch::randn({4, 7, 2 * 33}).to(dtype);
      for (at::Tensor* t : {&x, &qkv, &gu}) t->set_requires_grad(grad);
      at::Tensor q = qkv.narrow(2, 0, 3 * 16).view({2, 5, 3, 16});
      const std::vector<std::pair<at::Tensor, at::Tensor>> pairs = {
          {rms_norm(x, w, kEps), rms_norm_reference(x, w, kEps)},
          {rope(q, cos, sin), rope_reference(q, cos, sin)},
          {swiglu(gu), swiglu_reference(gu)}};
      for (const auto& [got, want] : pairs) {
        ASSERT_EQ(got.sizes(), want.sizes()) << dtype;
        if (dtype != at::kFloat)
          EXPECT_TRUE(torch::equal(got, want)) << dtype << " grad " << grad;
        else
          EXPECT_LT(max_rel(got, want), 1e-6) << "grad " << grad;
      }
      EXPECT_EQ(swiglu(gu).sizes(), (std::vector<int64_t>{4, 7, 33}));
    }
  }
}

// Training on the CPU: the fused ops' gradients equal autograd through the references (float32, to
// rounding) and the float64 formulas, for inputs and weights.
TEST(FusedLayerOps, CpuGradientsMatchTheReferences) {
  torch::manual_seed(21);
  auto grads_of = [](auto op, std::vector<at::Tensor> inputs, const at::Tensor& g) {
    for (auto& t : inputs) t = t.detach().clone().requires_grad_();
    at::Tensor y = op(inputs);
    y.backward(g);
    std::vector<at::Tensor> out{y.detach()};
    for (auto& t : inputs) out.push_back(t.grad());
    return out;
  };
  auto expect_close = [](const std::vector<at::Tensor>& got, const std::vector<at::Tensor>& want, const char* what) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_EQ(got[i].sizes(), want[i].sizes()) << what << " " << i;
      EXPECT_LT(max_rel(got[i], want[i]), 2e-6) << what << " output/grad " << i;
    }
  };
  {
    // 300 rows: several 64-row blocks of the weight gradient, and a partial last one.
    at::Tensor x = torch::randn({3, 100, 72}) * 2, w = 1 + 0.1 * torch::randn({72});
    at::Tensor g = torch::randn({3, 100, 72});
    auto got = grads_of([](auto& v) { return rms_norm(v[0], v[1], kEps); }, {x, w}, g);
    auto want = grads_of([](auto& v) { return rms_norm_reference(v[0], v[1], kEps); }, {x, w}, g);
    expect_close(got, want, "rms_norm");
    auto [dx, dw] = rms_norm_backward_f64(x.to(at::kDouble), w.to(at::kDouble), g.to(at::kDouble), kEps);
    EXPECT_LT(max_rel(got[1], dx), 1e-5);
    EXPECT_LT(max_rel(got[2], dw), 1e-5);
  }
  {
    // q as a strided view of a projection's output, as the model makes it.
    const int64_t B = 2, T = 7, heads = 3, D = 16;
    auto [cos, sin] = rotary(B, T, D);
    at::Tensor proj = torch::randn({B, T, (heads + 1) * D});
    at::Tensor g = torch::randn({B, T, heads, D});
    auto view = [&](const at::Tensor& p) { return p.narrow(2, 0, heads * D).view({B, T, heads, D}); };
    auto got = grads_of([&](auto& v) { return rope(view(v[0]), cos, sin); }, {proj}, g);
    auto want = grads_of([&](auto& v) { return rope_reference(view(v[0]), cos, sin); }, {proj}, g);
    expect_close(got, want, "rope");
    EXPECT_EQ(got[1].narrow(2, heads * D, D).abs().max().item<float>(), 0.f);
    EXPECT_LT(max_rel(view(got[1]), rope_backward_f64(g.to(at::kDouble), cos.to(at::kDouble), sin.to(at::kDouble))), 1e-6);
  }
  // The SwiGLU loops on every instruction set the machine has.
  for (auto isa : {cpu::CpuIsa::baseline, cpu::CpuIsa::avx2}) {
    if (static_cast<int>(isa) > static_cast<int>(cpu::detected_cpu_isa())) continue;
    SCOPED_TRACE("isa " + std::to_string(static_cast<int>(isa)));
    const cpu::CpuIsa previous = cpu::limit_cpu_isa(isa);
    at::Tensor gate = torch::randn({4, 9, 40}) * 3, up = torch::randn({4, 9, 40}), g = torch::randn({4, 9, 40});
    auto got = grads_of([](auto& v) { return silu_mul(v[0], v[1]); }, {gate, up}, g);
    auto want = grads_of([](auto& v) { return silu_mul_reference(v[0], v[1]); }, {gate, up}, g);
    expect_close(got, want, "silu_mul");
    at::Tensor d = swiglu_backward_f64(at::cat({gate, up}, -1).to(at::kDouble), g.to(at::kDouble));
    EXPECT_LT(max_rel(got[1], d.narrow(-1, 0, 40)), 1e-5);
    EXPECT_LT(max_rel(got[2], d.narrow(-1, 40, 40)), 1e-5);
    cpu::limit_cpu_isa(previous);
  }
  {
    // A frozen weight gets no gradient; the input still does.
    at::Tensor x = torch::randn({5, 24}).requires_grad_(), w = torch::ones({24});
    rms_norm(x, w, kEps).sum().backward();
    EXPECT_TRUE(x.grad().defined());
    EXPECT_FALSE(w.grad().defined());
  }
}

// The CPU loops sum in a fixed order: one thread and two give the same bits, forward and backward.
TEST(FusedLayerOps, CpuResultsDoNotDependOnTheThreadCount) {
  const int threads = at::get_num_threads();
  auto run = [](int n) {
    at::set_num_threads(n);
    torch::manual_seed(23);
    at::Tensor x = torch::randn({8, 256, 64}).requires_grad_(), w = (1 + 0.1 * torch::randn({64})).requires_grad_();
    at::Tensor gate = torch::randn({8, 256, 64}).requires_grad_(), up = torch::randn({8, 256, 64}).requires_grad_();
    auto [cos, sin] = rotary(8, 256, 16);
    at::Tensor y = rms_norm(x, w, kEps) * silu_mul(gate, up);
    at::Tensor r = rope(y.view({8, 256, 4, 16}), cos, sin);
    (r * r).sum().backward();
    return std::vector<at::Tensor>{r.detach(), x.grad(), w.grad(), gate.grad(), up.grad()};
  };
  auto one = run(1), two = run(2);
  at::set_num_threads(threads);
  for (size_t i = 0; i < one.size(); ++i) EXPECT_TRUE(torch::equal(one[i], two[i])) << i;
}

TEST(FusedLayerOps, ReferencesMatchFloat64Math) {
  torch::manual_seed(5);
  at::Tensor x = torch::randn({4, 6, 200}), w = 1 + 0.1 * torch::randn({200});
  EXPECT_LT(max_rel(rms_norm_reference(x, w, kEps), rms_norm_f64(x.to(at::kDouble), w.to(at::kDouble), kEps)), 1e-6);

  auto [cos, sin] = rotary(2, 9, 64);
  at::Tensor q = torch::randn({2, 4, 9, 64}).transpose(1, 2);  // [B, T, heads, D], not contiguous
  EXPECT_LT(max_rel(rope_reference(q, cos, sin),
                    rope_f64(q.to(at::kDouble), cos.to(at::kDouble), sin.to(at::kDouble))), 1e-6);

  at::Tensor gu = torch::randn({3, 5, 2 * 70}) * 3;
  EXPECT_LT(max_rel(swiglu_reference(gu), swiglu_f64(gu.to(at::kDouble))), 1e-6);
}

// The rounding the CUDA forward kernels reproduce: every ATen op of the reference rounds its result
// to the input dtype, and computes in float32.
TEST(FusedLayerOps, ReferenceRoundingIsPerOpInTheInputDtype) {
  for (auto dtype : {at::kBFloat16, at::kHalf}) {
    torch::manual_seed(9);
    auto rnd = [&](const at::Tensor& t) { return t.to(dtype).to(at::kFloat); };
    at::Tensor x = torch::randn({5, 128}).to(dtype), w = (1 + 0.1 * torch::randn({128})).to(dtype);
    at::Tensor xf = x.to(at::kFloat);
    at::Tensor n = rnd(xf * at::rsqrt(xf.pow(2).mean(-1, true) + kEps));
    EXPECT_TRUE(torch::equal(rms_norm_reference(x, w, kEps), (w.to(at::kFloat) * n).to(dtype))) << dtype;

    auto [cos, sin] = rotary(2, 3, 32);
    at::Tensor q = torch::randn({2, 3, 4, 32}).to(dtype);
    auto [x1, x2] = halves(q.to(at::kFloat));
    auto [c1, c2] = halves(rnd(cos).unsqueeze(2));
    auto [s1, s2] = halves(rnd(sin).unsqueeze(2));
    at::Tensor y = at::cat({rnd(x1 * c1) + rnd(-x2 * s1), rnd(x2 * c2) + rnd(x1 * s2)}, -1).to(dtype);
    EXPECT_TRUE(torch::equal(rope_reference(q, cos, sin), y)) << dtype;

    at::Tensor gu = (torch::randn({6, 2 * 50}) * 3).to(dtype);
    auto [a, b] = halves(gu.to(at::kFloat));
    EXPECT_TRUE(torch::equal(swiglu_reference(gu), (rnd(at::silu(a)) * b).to(dtype))) << dtype;
  }
}

TEST(FusedLayerOps, ReferenceGradientsMatchTheKernelsBackwardFormulas) {
  torch::manual_seed(13);
  {
    at::Tensor x = torch::randn({3, 7, 160}).requires_grad_(), w = (1 + 0.1 * torch::randn({160})).requires_grad_();
    at::Tensor y = rms_norm(x, w, kEps);
    at::Tensor g = torch::randn_like(y);
    y.backward(g);
    auto [dx, dw] = rms_norm_backward_f64(x.detach().to(at::kDouble), w.detach().to(at::kDouble), g.to(at::kDouble), kEps);
    EXPECT_LT(max_rel(x.grad(), dx), 1e-5);
    EXPECT_LT(max_rel(w.grad(), dw), 1e-5);
  }
  {
    // RoPE on a strided slice of a qkv projection: the gradient lands in the slice only.
    const int64_t B = 2, T = 6, heads = 3, kv_heads = 1, D = 32;
    auto [cos, sin] = rotary(B, T, D);
    at::Tensor qkv = torch::randn({B, T, (heads + 2 * kv_heads) * D}).requires_grad_();
    at::Tensor k = qkv.narrow(2, heads * D, kv_heads * D).view({B, T, kv_heads, D});
    at::Tensor y = rope(k, cos, sin);
    at::Tensor g = torch::randn_like(y);
    y.backward(g);
    at::Tensor dx = rope_backward_f64(g.to(at::kDouble), cos.to(at::kDouble), sin.to(at::kDouble));
    EXPECT_LT(max_rel(qkv.grad().narrow(2, heads * D, kv_heads * D).view({B, T, kv_heads, D}), dx), 1e-6);
    EXPECT_EQ(qkv.grad().narrow(2, 0, heads * D).abs().max().item<float>(), 0.f);
  }
  {
    at::Tensor gu = (torch::randn({5, 3, 2 * 90}) * 3).requires_grad_();
    at::Tensor y = swiglu(gu);
    at::Tensor g = torch::randn_like(y);
    y.backward(g);
    EXPECT_LT(max_rel(gu.grad(), swiglu_backward_f64(gu.detach().to(at::kDouble), g.to(at::kDouble))), 1e-5);
  }
}

TEST(FusedLayerOps, FormulasMatchFloat64Autograd) {
  // The hand formulas against autograd in float64, so the check above is not only float32 noise.
  torch::manual_seed(17);
  at::Tensor x = torch::randn({4, 48}, at::kDouble).requires_grad_();
  at::Tensor w = (1 + 0.1 * torch::randn({48}, at::kDouble)).requires_grad_();
  at::Tensor g = torch::randn({4, 48}, at::kDouble);
  rms_norm_f64(x, w, kEps).backward(g);
  auto [dx, dw] = rms_norm_backward_f64(x.detach(), w.detach(), g, kEps);
  EXPECT_LT(max_rel(x.grad(), dx), 1e-12);
  EXPECT_LT(max_rel(w.grad(), dw), 1e-12);

  auto [cos, sin] = rotary(2, 3, 16);
  at::Tensor q = torch::randn({2, 3, 2, 16}, at::kDouble).requires_grad_();
  at::Tensor gq = torch::randn({2, 3, 2, 16}, at::kDouble);
  rope_reference(q, cos.to(at::kDouble), sin.to(at::kDouble)).backward(gq);
  EXPECT_LT(max_rel(q.grad(), rope_backward_f64(gq, cos.to(at::kDouble), sin.to(at::kDouble))), 1e-12);

  at::Tensor gu = (torch::randn({3, 2 * 20}, at::kDouble) * 4).requires_grad_();
  at::Tensor gy = torch::randn({3, 20}, at::kDouble);
  swiglu_reference(gu).backward(gy);
  EXPECT_LT(max_rel(gu.grad(), swiglu_backward_f64(gu.detach(), gy)), 1e-12);
}

TEST(FusedLayerOps, RejectsBadShapes) {
  at::Tensor x = torch::randn({4, 8});
  EXPECT_THROW(rms_norm(x, torch::randn({7}), kEps), Error);
  EXPECT_THROW(rms_norm(x, torch::randn({8, 1}), kEps), Error);
  EXPECT_THROW(rms_norm(torch::randn({}), torch::randn({1}), kEps), Error);
  EXPECT_THROW(rms_norm_reference(x, torch::randn({7}), kEps), Error);

  auto [cos, sin] = rotary(2, 3, 8);
  EXPECT_THROW(rope(torch::randn({2, 3, 8}), cos, sin), Error);                     // not 4-D
  EXPECT_THROW(rope(torch::randn({2, 3, 4, 7}), cos.narrow(2, 0, 7), sin.narrow(2, 0, 7)), Error);  // odd D
  EXPECT_THROW(rope(torch::randn({2, 3, 4, 8}), cos.narrow(0, 0, 1), sin), Error);  // cos batch
  EXPECT_THROW(rope(torch::randn({2, 3, 4, 8}), cos, sin.narrow(1, 0, 2)), Error);  // sin length
  EXPECT_THROW(rope(torch::randn({2, 3, 4, 8}), cos.unsqueeze(2), sin), Error);     // cos [B, T, 1, D]
  EXPECT_THROW(rope_reference(torch::randn({2, 3, 8}), cos, sin), Error);
  try {
    rope(torch::randn({2, 3, 8}), cos, sin);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rope: x must be [B, T, heads, D]"), std::string::npos) << e.what();
  }

  EXPECT_THROW(swiglu(torch::randn({4, 7})), Error);
  EXPECT_THROW(swiglu(torch::randn({})), Error);
  EXPECT_THROW(swiglu_reference(torch::randn({4, 7})), Error);

  EXPECT_THROW(silu_mul(torch::randn({4, 7}), torch::randn({4, 8})), Error);
  EXPECT_THROW(silu_mul_reference(torch::randn({4, 7}), torch::randn({7})), Error);
}

TEST(FusedLayerOps, EmptyInputs) {
  EXPECT_EQ(rms_norm(torch::randn({0, 8}), torch::ones({8}), kEps).sizes(), (std::vector<int64_t>{0, 8}));
  auto [cos, sin] = rotary(2, 0, 8);
  EXPECT_EQ(rope(torch::randn({2, 0, 3, 8}), cos, sin).sizes(), (std::vector<int64_t>{2, 0, 3, 8}));
  EXPECT_EQ(swiglu(torch::randn({0, 6})).sizes(), (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(swiglu(torch::randn({3, 0})).sizes(), (std::vector<int64_t>{3, 0}));
  EXPECT_EQ(silu_mul(torch::randn({0, 6}), torch::randn({0, 6})).sizes(), (std::vector<int64_t>{0, 6}));
  at::Tensor x = torch::randn({0, 8}).requires_grad_();
  rms_norm(x, torch::ones({8}).requires_grad_(), kEps).sum().backward();
  EXPECT_EQ(x.grad().sizes(), (std::vector<int64_t>{0, 8}));
}
