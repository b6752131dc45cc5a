#include "fused_layer_ops_cpu.h"

#include <ATen/Parallel.h>

#include <cmath>

namespace mathrl::kernels::cpu {

namespace {

// Rows per task: below ~16K elements a tensor is one task (an OpenMP fork costs more than it saves).
int64_t grain_rows(int64_t row_elements) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(row_elements, 1)); }

}  // namespace

bool fused_ops_supported(const at::Tensor& x) {
  return x.device().is_cpu() && x.scalar_type() == at::kFloat && x.dim() >= 1 && x.stride(-1) == 1;
}

at::Tensor rms_norm_forward(const at::Tensor& x, const at::Tensor& weight, double eps) {
  const at::Tensor xc = x.contiguous(), wc = weight.contiguous();
  const int64_t H = xc.size(-1), rows = xc.numel() / H;
  at::Tensor y = at::empty_like(xc);
  if (y.numel() == 0) return y;
  const float* in = xc.const_data_ptr<float>();
  const float* w = wc.const_data_ptr<float>();
  float* out = y.data_ptr<float>();
  const float e = static_cast<float>(eps);
  at::parallel_for(0, rows, grain_rows(H), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* a = in + r * H;
      float lanes[8] = {};
      int64_t i = 0;
      for (; i + 8 <= H; i += 8)
        for (int j = 0; j < 8; ++j) lanes[j] += a[i + j] * a[i + j];
      float ss = 0;
      for (; i < H; ++i) ss += a[i] * a[i];
      for (float l : lanes) ss += l;
      const float inv = 1.f / std::sqrt(ss / static_cast<float>(H) + e);
      float* o = out + r * H;
      for (int64_t k = 0; k < H; ++k) o[k] = w[k] * (a[k] * inv);
    }
  });
  return y;
}

at::Tensor rope_forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t B = x.size(0), T = x.size(1), heads = x.size(2), D = x.size(3), half = D / 2;
  const at::Tensor c = cos.contiguous(), s = sin.contiguous();
  at::Tensor y = at::empty({B, T, heads, D}, x.options());
  if (y.numel() == 0) return y;
  const float* in = x.const_data_ptr<float>();
  const float* cp = c.const_data_ptr<float>();
  const float* sp = s.const_data_ptr<float>();
  float* out = y.data_ptr<float>();
  const int64_t sb = x.stride(0), st = x.stride(1), sh = x.stride(2);
  at::parallel_for(0, B * T * heads, grain_rows(D), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / (T * heads), t = (i / heads) % T, h = i % heads;
      const float* a = in + b * sb + t * st + h * sh;
      const float* cr = cp + (b * T + t) * D;
      const float* sr = sp + (b * T + t) * D;
      float* o = out + i * D;
      for (int64_t d = 0; d < half; ++d) o[d] = a[d] * cr[d] + (-a[d + half]) * sr[d];
      for (int64_t d = half; d < D; ++d) o[d] = a[d] * cr[d] + a[d - half] * sr[d];
    }
  });
  return y;
}

at::Tensor swiglu_forward(const at::Tensor& gate_up) {
  const at::Tensor g = gate_up.contiguous();
  const int64_t I = g.size(-1) / 2;
  std::vector<int64_t> shape(g.sizes().begin(), g.sizes().end());
  shape.back() = I;
  at::Tensor y = at::empty(shape, g.options());
  if (y.numel() == 0) return y;
  const int64_t rows = g.numel() / (2 * I);
  const float* in = g.const_data_ptr<float>();
  float* out = y.data_ptr<float>();
  at::parallel_for(0, rows, grain_rows(2 * I), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* gate = in + r * 2 * I;
      const float* up = gate + I;
      float* o = out + r * I;
      for (int64_t k = 0; k < I; ++k) o[k] = gate[k] / (1.f + std::exp(-gate[k])) * up[k];
    }
  });
  return y;
}

}  // namespace mathrl::kernels::cpu
