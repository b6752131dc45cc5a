// kernels/adamw_step's reference path (what CPU tensors take, and what the CUDA kernel is checked
// against in adamw_step_gpu_test.cpp) against a scalar float64 AdamW, and its argument checks.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include <torch/torch.h>

#include "adamw_step.h"
#include "common/error.h"

using namespace mathrl::kernels;

namespace {

// torch.optim.AdamW for one element, in float64.
void scalar_adamw(double& p, double g, double& m, double& v, const AdamWStep& s) {
  g *= s.grad_scale;
  p *= 1 - s.lr * s.weight_decay;
  m = s.beta1 * m + (1 - s.beta1) * g;
  v = s.beta2 * v + (1 - s.beta2) * g * g;
  const double bias1 = 1 - std::pow(s.beta1, s.step), bias2 = 1 - std::pow(s.beta2, s.step);
  p -= s.lr / bias1 * m / (std::sqrt(v) / std::sqrt(bias2) + s.eps);
}

}  // namespace

TEST(AdamWStep, ReferenceMatchesScalarFloat64) {
  auto gen = at::detail::createCPUGenerator(7);
  const int64_t n = 37;
  at::Tensor master = at::randn({n}, gen), m = at::zeros({n}), v = at::zeros({n});
  at::Tensor weight = master.to(at::kBFloat16);
  std::vector<double> p64(n), m64(n, 0.0), v64(n, 0.0);
  for (int64_t i = 0; i < n; ++i) p64[i] = master[i].item<double>();
  AdamWStep s;
  s.lr = 1e-2, s.beta1 = 0.9, s.beta2 = 0.95, s.eps = 1e-8, s.weight_decay = 0.1;
  for (int64_t step = 1; step <= 4; ++step) {
    at::Tensor g = at::randn({n}, gen).to(at::kBFloat16);  // a bf16 gradient, read as it is
    s.step = step, s.grad_scale = step == 2 ? 0.25 : 1.0;  // step 2: clipped
    for (int64_t i = 0; i < n; ++i) scalar_adamw(p64[i], g[i].item<double>(), m64[i], v64[i], s);
    adamw_step_reference({master}, {g}, {m}, {v}, {weight}, s);
  }
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_NEAR(master[i].item<double>(), p64[i], 1e-5 * (1 + std::abs(p64[i]))) << i;
    EXPECT_NEAR(m[i].item<double>(), m64[i], 1e-6 * (1 + std::abs(m64[i]))) << i;
  }
  EXPECT_TRUE(at::equal(weight, master.to(at::kBFloat16)));  // the model's weights: the masters rounded
}

TEST(AdamWStep, CpuTensorsTakeTheReferenceAndBadListsAreErrors) {
  at::Tensor a = at::ones({8}), m = at::zeros({8}), v = at::zeros({8}), g = at::ones({8});
  EXPECT_FALSE(adamw_step_fused({a}, {g}, {m}, {v}, {}));
  at::Tensor b = a.clone(), mb = m.clone(), vb = v.clone();
  AdamWStep s;
  adamw_step({a}, {g}, {m}, {v}, {}, s);
  adamw_step_reference({b}, {g}, {mb}, {vb}, {}, s);
  EXPECT_TRUE(at::equal(a, b));
  EXPECT_THROW(adamw_step({a}, {g, g}, {m}, {v}, {}, s), mathrl::Error);
  EXPECT_THROW(adamw_step({a}, {at::ones({7})}, {m}, {v}, {}, s), mathrl::Error);
  EXPECT_THROW(adamw_step({a.to(at::kBFloat16)}, {g}, {m}, {v}, {}, s), mathrl::Error);  // masters are float32
  s.step = 0;
  EXPECT_THROW(adamw_step({a}, {g}, {m}, {v}, {}, s), mathrl::Error);
}
