#include "fused_layer_ops_cpu.h"

#include <ATen/Parallel.h>

#include "cpu_exp.h"
#include "cpu_isa.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace mathrl::kernels::cpu {

namespace {

// Rows per task: below ~16K elements a tensor is one task (an OpenMP fork costs more than it saves).
int64_t grain_rows(int64_t row_elements) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(row_elements, 1)); }

// Sum of a[i] * b[i] in 8 lanes, then the tail, then the lanes: one fixed order.
float dot(const float* a, const float* b, int64_t H) {
  float lanes[8] = {};
  int64_t i = 0;
  for (; i + 8 <= H; i += 8)
    for (int j = 0; j < 8; ++j) lanes[j] += a[i + j] * b[i + j];
  float s = 0;
  for (; i < H; ++i) s += a[i] * b[i];
  for (float l : lanes) s += l;
  return s;
}

// The SwiGLU loops: sigmoid through the vectorized exp, with an AVX2+FMA clone picked at run time
// (cpu_isa.h; the default build is SSE2).
#define MATHRL_INLINE [[gnu::always_inline]] inline
#define MATHRL_AVX2 __attribute__((target("avx2,fma")))

MATHRL_INLINE float sigmoid(float a) { return 1.f / (1.f + exp_clamped(-a)); }

// out[r, k] = silu(gate[r, k]) * up[r, k] for rows of I: gate and up rows `stride` apart, out's I.
MATHRL_INLINE void silu_mul_loop(const float* __restrict gate, const float* __restrict up, float* __restrict out,
                                 int64_t rows, int64_t I, int64_t stride) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < I; ++k) {
      const float a = gate[r * stride + k];
      out[r * I + k] = a * sigmoid(a) * up[r * stride + k];
    }
}
MATHRL_AVX2 void silu_mul_loop_avx2(const float* gate, const float* up, float* out, int64_t rows, int64_t I,
                                    int64_t stride) {
  silu_mul_loop(gate, up, out, rows, I, stride);
}

MATHRL_INLINE void silu_mul_backward_loop(const float* __restrict gate, const float* __restrict up,
                                          const float* __restrict g, float* __restrict d_gate, float* __restrict d_up,
                                          int64_t n) {
  for (int64_t k = 0; k < n; ++k) {
    const float a = gate[k], sig = sigmoid(a);
    d_gate[k] = g[k] * up[k] * sig * (1.f + a * (1.f - sig));
    d_up[k] = g[k] * a * sig;
  }
}
MATHRL_AVX2 void silu_mul_backward_loop_avx2(const float* gate, const float* up, const float* g, float* d_gate,
                                             float* d_up, int64_t n) {
  silu_mul_backward_loop(gate, up, g, d_gate, d_up, n);
}

bool has_avx2() { return active_cpu_isa() >= CpuIsa::avx2; }

void silu_mul_rows(const float* gate, const float* up, float* out, int64_t rows, int64_t I, int64_t stride) {
  if (has_avx2()) return silu_mul_loop_avx2(gate, up, out, rows, I, stride);
  silu_mul_loop(gate, up, out, rows, I, stride);
}

}  // namespace

bool fused_ops_supported(const at::Tensor& x) {
  return x.device().is_cpu() && x.scalar_type() == at::kFloat && x.dim() >= 1 && x.stride(-1) == 1;
}

at::Tensor rms_norm_forward(const at::Tensor& x, const at::Tensor& weight, double eps, at::Tensor* rstd) {
  const at::Tensor xc = x.contiguous(), wc = weight.contiguous();
  const int64_t H = xc.size(-1), rows = xc.numel() / H;
  at::Tensor y = at::empty_like(xc);
  if (rstd) *rstd = at::empty({rows}, xc.options());
  if (y.numel() == 0) return y;
  const float* in = xc.const_data_ptr<float>();
  const float* w = wc.const_data_ptr<float>();
  float* out = y.data_ptr<float>();
  float* r_out = rstd ? rstd->data_ptr<float>() : nullptr;
  const float e = static_cast<float>(eps);
  at::parallel_for(0, rows, grain_rows(H), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* a = in + r * H;
      const float inv = 1.f / std::sqrt(dot(a, a, H) / static_cast<float>(H) + e);
      if (r_out) r_out[r] = inv;
      float* o = out + r * H;
      for (int64_t k = 0; k < H; ++k) o[k] = w[k] * (a[k] * inv);
    }
  });
  return y;
}

std::pair<at::Tensor, at::Tensor> rms_norm_backward(const at::Tensor& x, const at::Tensor& weight,
                                                    const at::Tensor& rstd, const at::Tensor& grad, bool want_weight) {
  const at::Tensor xc = x.contiguous(), wc = weight.contiguous(), rc = rstd.contiguous();
  const at::Tensor gc = grad.to(at::kFloat).contiguous();
  const int64_t H = xc.size(-1), rows = xc.numel() / H;
  at::Tensor dx = at::empty_like(xc);
  // dweight: partial sums over fixed blocks of rows, then the blocks summed in order.
  constexpr int64_t kBlockRows = 64;
  const int64_t blocks = (rows + kBlockRows - 1) / kBlockRows;
  at::Tensor partial = want_weight ? at::zeros({std::max<int64_t>(blocks, 1), H}, xc.options()) : at::Tensor();
  at::Tensor dw = want_weight ? at::zeros({H}, xc.options()) : at::Tensor();
  if (rows == 0) return {dx, dw};
  const float* in = xc.const_data_ptr<float>();
  const float* w = wc.const_data_ptr<float>();
  const float* rs = rc.const_data_ptr<float>();
  const float* g = gc.const_data_ptr<float>();
  float* dxp = dx.data_ptr<float>();
  float* part = want_weight ? partial.data_ptr<float>() : nullptr;
  const int64_t block_grain = std::max<int64_t>(1, grain_rows(H) / kBlockRows);
  at::parallel_for(0, blocks, block_grain, [&](int64_t b0, int64_t b1) {
    std::vector<float> gw(static_cast<size_t>(H));
    for (int64_t b = b0; b < b1; ++b) {
      float* pw = part ? part + b * H : nullptr;
      for (int64_t r = b * kBlockRows; r < std::min(rows, (b + 1) * kBlockRows); ++r) {
        const float* a = in + r * H;
        const float* gr = g + r * H;
        const float inv = rs[r];
        for (int64_t k = 0; k < H; ++k) gw[static_cast<size_t>(k)] = gr[k] * w[k];
        // mean(g*w*n) = inv * dot(g*w, x) / H
        const float m = inv * dot(gw.data(), a, H) / static_cast<float>(H);
        float* o = dxp + r * H;
        for (int64_t k = 0; k < H; ++k) o[k] = inv * (gw[static_cast<size_t>(k)] - a[k] * inv * m);
        if (pw)
          for (int64_t k = 0; k < H; ++k) pw[k] += gr[k] * (a[k] * inv);
      }
    }
  });
  if (want_weight) {
    float* out = dw.data_ptr<float>();
    for (int64_t b = 0; b < blocks; ++b)
      for (int64_t k = 0; k < H; ++k) out[k] += part[b * H + k];
  }
  return {dx, dw};
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
    silu_mul_rows(in + begin * 2 * I, in + begin * 2 * I + I, out + begin * I, end - begin, I, 2 * I);
  });
  return y;
}

at::Tensor rope_backward(const at::Tensor& grad, const at::Tensor& cos, const at::Tensor& sin) {
  const at::Tensor g = grad.to(at::kFloat).contiguous(), c = cos.contiguous(), s = sin.contiguous();
  const int64_t B = g.size(0), T = g.size(1), heads = g.size(2), D = g.size(3), half = D / 2;
  at::Tensor dx = at::empty_like(g);
  if (dx.numel() == 0) return dx;
  const float* gp = g.const_data_ptr<float>();
  const float* cp = c.const_data_ptr<float>();
  const float* sp = s.const_data_ptr<float>();
  float* out = dx.data_ptr<float>();
  at::parallel_for(0, B * T * heads, grain_rows(D), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t bt = i / heads;
      const float* a = gp + i * D;
      const float* cr = cp + bt * D;
      const float* sr = sp + bt * D;
      float* o = out + i * D;
      for (int64_t d = 0; d < half; ++d) o[d] = a[d] * cr[d] + a[d + half] * sr[d + half];
      for (int64_t d = half; d < D; ++d) o[d] = a[d] * cr[d] - a[d - half] * sr[d - half];
    }
  });
  return dx;
}

at::Tensor silu_mul_forward(const at::Tensor& gate, const at::Tensor& up) {
  const at::Tensor a = gate.contiguous(), b = up.contiguous();
  at::Tensor y = at::empty_like(a);
  const int64_t n = a.numel();
  if (n == 0) return y;
  const float* ap = a.const_data_ptr<float>();
  const float* bp = b.const_data_ptr<float>();
  float* out = y.data_ptr<float>();
  at::parallel_for(0, n, 16384, [&](int64_t begin, int64_t end) {
    silu_mul_rows(ap + begin, bp + begin, out + begin, 1, end - begin, 0);
  });
  return y;
}

std::pair<at::Tensor, at::Tensor> silu_mul_backward(const at::Tensor& gate, const at::Tensor& up, const at::Tensor& grad) {
  const at::Tensor a = gate.contiguous(), b = up.contiguous(), g = grad.to(at::kFloat).contiguous();
  at::Tensor da = at::empty_like(a), db = at::empty_like(a);
  const int64_t n = a.numel();
  if (n == 0) return {da, db};
  const float* ap = a.const_data_ptr<float>();
  const float* bp = b.const_data_ptr<float>();
  const float* gp = g.const_data_ptr<float>();
  float* dap = da.data_ptr<float>();
  float* dbp = db.data_ptr<float>();
  at::parallel_for(0, n, 16384, [&](int64_t begin, int64_t end) {
    const int64_t m = end - begin;
    if (has_avx2()) return silu_mul_backward_loop_avx2(ap + begin, bp + begin, gp + begin, dap + begin, dbp + begin, m);
    silu_mul_backward_loop(ap + begin, bp + begin, gp + begin, dap + begin, dbp + begin, m);
  });
  return {da, db};
}

}  // namespace mathrl::kernels::cpu
