// AdamW against torch::optim::AdamW (plain loop and ATen's fused kernel), the weight-decay rule,
// fp32 master weights for bf16 models, global-norm clipping, the NaN/inf guard, state round trip.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include <torch/torch.h>

#include "common/error.h"
#include "support/test_support.h"
#include "train/optimizer.h"
#include "train_test_util.h"

using namespace mathrl;
using namespace mathrl::train;

namespace {

struct Params {
  std::vector<std::pair<std::string, at::Tensor>> named;
};

Params make_params(uint64_t seed, at::ScalarType dtype = at::kFloat) {
  auto gen = at::detail::createCPUGenerator(seed);
  Params p;
  p.named.emplace_back("w", at::randn({5, 7}, gen).to(dtype).set_requires_grad(true));
  p.named.emplace_back("norm.weight", at::randn({7}, gen).to(dtype).set_requires_grad(true));
  p.named.emplace_back("emb", at::randn({3, 4}, gen).to(dtype).set_requires_grad(true));
  return p;
}

void set_grads(Params& p, uint64_t seed, double scale = 1.0) {
  auto gen = at::detail::createCPUGenerator(seed);
  for (auto& [n, t] : p.named) t.mutable_grad() = (at::randn(t.sizes(), gen) * scale).to(t.scalar_type());
}

// torch's reference with two groups: decay for matrices, none for vectors.
std::vector<at::Tensor> reference_run(const AdamWOptions& o, const std::vector<double>& lrs) {
  Params p = make_params(1);
  std::vector<at::Tensor> decay, nodecay;
  for (auto& [n, t] : p.named) (t.dim() >= 2 ? decay : nodecay).push_back(t);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(
                                 torch::optim::AdamWOptions(1.0).betas({o.beta1, o.beta2}).eps(o.eps).weight_decay(o.weight_decay)));
  groups.emplace_back(nodecay, std::make_unique<torch::optim::AdamWOptions>(
                                   torch::optim::AdamWOptions(1.0).betas({o.beta1, o.beta2}).eps(o.eps).weight_decay(0.0)));
  torch::optim::AdamW ref(groups, torch::optim::AdamWOptions(1.0));
  for (size_t s = 0; s < lrs.size(); ++s) {
    set_grads(p, 100 + s);
    for (auto& g : ref.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lrs[s]);
    ref.step();
  }
  std::vector<at::Tensor> out;
  for (auto& [n, t] : p.named) out.push_back(t.detach().clone());
  return out;
}

std::vector<at::Tensor> our_run(AdamWOptions o, const std::vector<double>& lrs, at::ScalarType dtype = at::kFloat) {
  Params p = make_params(1, dtype);
  AdamW opt(p.named, o);
  for (size_t s = 0; s < lrs.size(); ++s) {
    set_grads(p, 100 + s);
    StepResult r = opt.step(lrs[s], 1.0);
    EXPECT_TRUE(r.applied);
  }
  std::vector<at::Tensor> out;
  for (auto& [n, t] : p.named) out.push_back(t.detach().to(at::kFloat).clone());
  return out;
}

AdamWOptions no_clip() {
  AdamWOptions o;
  o.clip = 0;
  o.weight_decay = 0.1;
  return o;
}

}  // namespace

TEST(AdamW, PlainMatchesTorchAdamW) {
  std::vector<double> lrs = {1e-2, 5e-3, 2e-2, 1e-3, 1e-2};
  AdamWOptions o = no_clip();
  o.fused = AdamWOptions::Fused::Off;
  auto ref = reference_run(o, lrs);
  auto ours = our_run(o, lrs);
  for (size_t i = 0; i < ref.size(); ++i) EXPECT_TRUE(at::allclose(ours[i], ref[i], 1e-6, 1e-7)) << i;
}

TEST(AdamW, FusedKernelMatchesTorchAdamW) {
  std::vector<double> lrs = {1e-2, 5e-3, 2e-2, 1e-3, 1e-2};
  AdamWOptions o = no_clip();
  o.fused = AdamWOptions::Fused::On;  // ATen's fused CPU kernel: the same code path CUDA takes
  auto ref = reference_run(o, lrs);
  auto ours = our_run(o, lrs);
  for (size_t i = 0; i < ref.size(); ++i) EXPECT_TRUE(at::allclose(ours[i], ref[i], 1e-5, 1e-6)) << i;
}

TEST(AdamW, WeightDecayRuleSkipsVectors) {
  EXPECT_TRUE(decays("model.layers.0.mlp.up_proj.weight", at::zeros({4, 4})));
  EXPECT_TRUE(decays("model.embed_tokens.weight", at::zeros({10, 4})));
  EXPECT_FALSE(decays("model.norm.weight", at::zeros({4})));
  EXPECT_FALSE(decays("model.layers.0.self_attn.q_proj.bias", at::zeros({4})));
  // Zero gradient, decay only: matrices shrink by (1 - lr*wd), vectors stay.
  Params p = make_params(3);
  auto before = p.named[0].second.detach().clone(), before_v = p.named[1].second.detach().clone();
  AdamWOptions o = no_clip();
  AdamW opt(p.named, o);
  for (auto& [n, t] : p.named) t.mutable_grad() = at::zeros_like(t);
  opt.step(0.5, 0.0);
  EXPECT_TRUE(at::allclose(p.named[0].second.detach(), before * (1 - 0.5 * 0.1), 1e-6, 1e-7));
  EXPECT_TRUE(at::equal(p.named[1].second.detach(), before_v));
}

TEST(AdamW, Bf16ModelKeepsFp32Masters) {
  std::vector<double> lrs(6, 1e-4);  // updates far below bf16's resolution of the weights
  AdamWOptions o = no_clip();
  o.fused = AdamWOptions::Fused::Off;
  Params p = make_params(1, at::kBFloat16);
  AdamW opt(p.named, o);
  ASSERT_TRUE(opt.has_masters());
  // Reference: float32 parameters starting from the same (bf16-rounded) values and bf16-rounded grads.
  Params ref = make_params(1, at::kBFloat16);
  std::vector<std::pair<std::string, at::Tensor>> f32;
  for (auto& [n, t] : ref.named) f32.emplace_back(n, t.detach().to(at::kFloat).set_requires_grad(true));
  AdamW ref_opt(f32, o);
  for (size_t s = 0; s < lrs.size(); ++s) {
    set_grads(p, 100 + s);
    for (size_t i = 0; i < f32.size(); ++i) f32[i].second.mutable_grad() = p.named[i].second.grad().to(at::kFloat);
    opt.step(lrs[s], 1.0);
    ref_opt.step(lrs[s], 1.0);
  }
  for (size_t i = 0; i < f32.size(); ++i) {
    // The model's bf16 weights are the float32 reference rounded to bf16.
    EXPECT_TRUE(at::equal(p.named[i].second.detach(), f32[i].second.detach().to(at::kBFloat16))) << i;
  }
  // The tiny updates are not lost: the reference moved away from the bf16 start.
  EXPECT_GT((f32[0].second.detach() - make_params(1, at::kBFloat16).named[0].second.to(at::kFloat)).abs().max().item<double>(), 1e-4);
}

TEST(AdamW, Bf16GradientsOfAnyMicroBatchCountSumInFloat32) {
  // One micro-batch's gradients are held as they are (no float32 buffer), more are summed in
  // float32 (a small second term bf16 would lose); grad_norm() and step() also see gradients of a
  // backward not yet handed over.
  for (int micros : {1, 2, 3}) {
    AdamWOptions o = no_clip();
    o.fused = AdamWOptions::Fused::Off;
    Params p = make_params(1, at::kBFloat16);
    AdamW opt(p.named, o);
    Params ref = make_params(1, at::kBFloat16);
    std::vector<std::pair<std::string, at::Tensor>> f32;
    for (auto& [n, t] : ref.named) f32.emplace_back(n, t.detach().to(at::kFloat).set_requires_grad(true));
    AdamW ref_opt(f32, o);
    for (int step = 0; step < 2; ++step) {
      std::vector<at::Tensor> sum(p.named.size());
      for (int micro = 0; micro < micros; ++micro) {
        set_grads(p, 10 * step + micro, micro == 0 ? 1.0 : 1e-3);
        for (size_t i = 0; i < p.named.size(); ++i) {
          at::Tensor g = p.named[i].second.grad().to(at::kFloat);
          sum[i] = micro == 0 ? g : sum[i] + g;
        }
        if (micro + 1 < micros || step == 0) {  // step 1: the last one left in the parameters
          opt.accumulate_grads();
          for (auto& [n, t] : p.named) EXPECT_FALSE(t.grad().defined());
        }
      }
      double norm = 0;
      for (auto& g : sum) norm += g.pow(2).sum().item<double>();
      EXPECT_NEAR(opt.grad_norm(), std::sqrt(norm), 1e-5 * std::sqrt(norm)) << micros;
      for (size_t i = 0; i < f32.size(); ++i) f32[i].second.mutable_grad() = sum[i];
      EXPECT_NEAR(opt.step(1e-3, 1.0).grad_norm, std::sqrt(norm), 1e-5 * std::sqrt(norm)) << micros;
      ref_opt.step(1e-3, 1.0);
    }
    for (size_t i = 0; i < f32.size(); ++i)
      EXPECT_TRUE(at::equal(p.named[i].second.detach(), f32[i].second.detach().to(at::kBFloat16))) << micros << " " << i;
  }
}

TEST(AdamW, ClipsByGlobalNormAndReportsIt) {
  Params p = make_params(5);
  set_grads(p, 7, 10.0);
  double expect = 0;
  for (auto& [n, t] : p.named) expect += t.grad().pow(2).sum().item<double>();
  expect = std::sqrt(expect);
  AdamWOptions o;
  o.clip = 1.0;
  AdamW opt(p.named, o);
  EXPECT_NEAR(opt.grad_norm(), expect, 1e-4 * expect);
  // With lr 0 nothing moves, but the hook sees the unclipped grads and the result the norm.
  std::vector<at::Tensor> seen;
  opt.set_grad_hook([&](std::vector<at::Tensor>& g) { seen = g; });
  StepResult r = opt.step(0.0, 1.0);
  EXPECT_NEAR(r.grad_norm, expect, 1e-4 * expect);
  ASSERT_EQ(seen.size(), 3u);
  double clipped = 0;
  for (auto& g : seen) clipped += g.pow(2).sum().item<double>();
  EXPECT_NEAR(std::sqrt(clipped), 1.0, 1e-4);  // the same tensors were scaled in place
}

TEST(AdamW, GradHookRunsBeforeTheUpdate) {
  // A data-parallel run reduces gradients in the hook; what the hook leaves is what the step uses.
  AdamWOptions o = no_clip();
  o.weight_decay = 0;
  Params p = make_params(9);
  auto before = p.named[0].second.detach().clone();
  AdamW opt(p.named, o);
  size_t calls = 0;
  opt.set_grad_hook([&](std::vector<at::Tensor>& g) {
    ++calls;
    ASSERT_EQ(g.size(), 3u);
    for (auto& t : g) t.zero_();
  });
  set_grads(p, 11);
  EXPECT_TRUE(opt.step(1e-1, 1.0).applied);
  EXPECT_EQ(calls, 1u);
  EXPECT_TRUE(at::equal(p.named[0].second.detach(), before));  // zero gradient: Adam does not move
  opt.set_grad_hook({});
  set_grads(p, 11);
  opt.step(1e-1, 1.0);
  EXPECT_FALSE(at::equal(p.named[0].second.detach(), before));
}

TEST(AdamW, NanGuardSkipsCountsAndStops) {
  Params p = make_params(2);
  AdamWOptions o = no_clip();
  o.nan_guard_limit = 3;
  AdamW opt(p.named, o);
  auto before = p.named[0].second.detach().clone();
  set_grads(p, 1);
  StepResult r = opt.step(1e-2, std::numeric_limits<double>::quiet_NaN());
  EXPECT_FALSE(r.applied);
  EXPECT_EQ(r.skipped_total, 1);
  EXPECT_TRUE(at::equal(p.named[0].second.detach(), before));  // untouched
  EXPECT_FALSE(p.named[0].second.grad().defined());            // zeroed
  // A finite step resets the run of skips.
  set_grads(p, 2);
  EXPECT_TRUE(opt.step(1e-2, 1.0).applied);
  // Infinite gradients are caught too.
  set_grads(p, 3);
  p.named[1].second.mutable_grad()[0] = std::numeric_limits<float>::infinity();
  r = opt.step(1e-2, 1.0);
  EXPECT_FALSE(r.applied);
  EXPECT_TRUE(std::isinf(r.grad_norm));
  set_grads(p, 4);
  EXPECT_FALSE(opt.step(1e-2, std::numeric_limits<double>::infinity()).applied);
  set_grads(p, 5);
  try {
    opt.step(1e-2, std::numeric_limits<double>::quiet_NaN());
    FAIL() << "the third non-finite step in a row must stop the run";
  } catch (const mathrl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("3 steps in a row"), std::string::npos) << e.what();
  }
  EXPECT_EQ(opt.skipped(), 4);
  EXPECT_EQ(opt.steps(), 1);
}

TEST(AdamW, StateRoundTripContinuesIdentically) {
  std::vector<double> lrs = {1e-2, 2e-2, 5e-3, 1e-2};
  AdamWOptions o = no_clip();
  o.fused = AdamWOptions::Fused::Off;
  auto straight = our_run(o, lrs, at::kBFloat16);
  // Two steps, save, fresh optimizer + weights from the saved copy, two more steps.
  Params p = make_params(1, at::kBFloat16);
  mathrl::test::TempDir dir;
  std::vector<at::Tensor> saved;
  {
    AdamW opt(p.named, o);
    for (size_t s = 0; s < 2; ++s) {
      set_grads(p, 100 + s);
      opt.step(lrs[s], 1.0);
    }
    opt.save(dir.file("opt.safetensors"));
    for (auto& [n, t] : p.named) saved.push_back(t.detach().clone());
  }
  Params q = make_params(77, at::kBFloat16);  // different start: load must restore everything
  {
    at::NoGradGuard g;
    for (size_t i = 0; i < saved.size(); ++i) q.named[i].second.copy_(saved[i]);
  }
  AdamW opt(q.named, o);
  opt.load(dir.file("opt.safetensors"));
  EXPECT_EQ(opt.steps(), 2);
  for (size_t s = 2; s < lrs.size(); ++s) {
    set_grads(q, 100 + s);
    opt.step(lrs[s], 1.0);
  }
  for (size_t i = 0; i < straight.size(); ++i) EXPECT_TRUE(at::equal(q.named[i].second.detach().to(at::kFloat), straight[i])) << i;
  // A state of another shape is refused.
  Params other;
  other.named.emplace_back("w", at::zeros({2, 2}).set_requires_grad(true));
  other.named.emplace_back("norm.weight", at::zeros({7}, at::kBFloat16).set_requires_grad(true));
  other.named.emplace_back("emb", at::zeros({3, 4}).set_requires_grad(true));
  AdamW bad(other.named, o);
  EXPECT_THROW(bad.load(dir.file("opt.safetensors")), mathrl::DataError);
}
