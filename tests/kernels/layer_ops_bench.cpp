// Benchmark (not a test): the fused layer ops against their ATen references, forward and backward,
// at the shapes of a training step (micro_batch x seq_len rows). Repetitions of the two alternate,
// so a noisy machine slows both alike; prints the median time of each per op.
//   build/tests/kernels/layer_ops_bench [rows=2048] [hidden=128] [intermediate=344] [heads=4] [head_dim=32]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "fused_layer_ops.h"

using namespace mathrl::kernels;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double seconds(const std::function<void()>& f) {
  auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Forward and backward of y = op(inputs) with a fixed upstream gradient.
std::function<void()> step(std::function<at::Tensor(std::vector<at::Tensor>&)> op, std::vector<at::Tensor> inputs) {
  for (auto& t : inputs) t.requires_grad_();
  return [op, inputs]() mutable {
    for (auto& t : inputs) t.mutable_grad() = at::Tensor();
    at::Tensor y = op(inputs);
    y.backward(at::ones_like(y));
  };
}

void compare(const char* name, const std::function<void()>& fused, const std::function<void()>& reference, int reps) {
  std::vector<double> a, b;
  for (int i = 0; i < 3; ++i) fused(), reference();
  for (int i = 0; i < reps; ++i) {
    a.push_back(seconds(fused));
    b.push_back(seconds(reference));
  }
  std::printf("%-10s fused %8.1f us   reference %8.1f us   %.2fx\n", name, 1e6 * median(a), 1e6 * median(b),
              median(b) / median(a));
}

}  // namespace

int main(int argc, char** argv) {
  auto arg = [&](int i, int64_t d) { return argc > i ? std::atoll(argv[i]) : d; };
  const int64_t rows = arg(1, 2048), H = arg(2, 128), I = arg(3, 344), heads = arg(4, 4), D = arg(5, 32);
  const int reps = 50;
  torch::manual_seed(1);
  std::printf("rows %lld hidden %lld intermediate %lld heads %lld x %lld, %d threads\n", (long long)rows, (long long)H,
              (long long)I, (long long)heads, (long long)D, at::get_num_threads());
  at::Tensor x = torch::randn({1, rows, H}), w = 1 + 0.1 * torch::randn({H});
  compare("rms_norm", step([](auto& v) { return rms_norm(v[0], v[1], 1e-6); }, {x, w}),
          step([](auto& v) { return rms_norm_reference(v[0], v[1], 1e-6); }, {x, w}), reps);
  at::Tensor gate = torch::randn({1, rows, I}), up = torch::randn({1, rows, I});
  compare("silu_mul", step([](auto& v) { return silu_mul(v[0], v[1]); }, {gate, up}),
          step([](auto& v) { return silu_mul_reference(v[0], v[1]); }, {gate, up}), reps);
  at::Tensor q = torch::randn({1, rows, heads, D});
  at::Tensor pos = at::arange(rows, at::kFloat).unsqueeze(-1);
  at::Tensor inv = 1.0 / at::pow(10000.0, at::arange(0, D, 2, at::kFloat) / static_cast<double>(D));
  at::Tensor emb = at::cat({pos * inv, pos * inv}, -1).unsqueeze(0);
  at::Tensor cos = emb.cos(), sin = emb.sin();
  compare("rope", step([&](auto& v) { return rope(v[0], cos, sin); }, {q}),
          step([&](auto& v) { return rope_reference(v[0], cos, sin); }, {q}), reps);
  return 0;
}
