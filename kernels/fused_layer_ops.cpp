#include "fused_layer_ops.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>

#include <torch/autograd.h>

#include "common/error.h"
#include "fused_layer_ops_cpu.h"

#ifdef MATHRL_HAVE_CUDA_KERNELS
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "cuda_launch.h"
#include "fused_layer_ops_cuda.h"
#endif

namespace mathrl::kernels {

bool fused_layer_ops_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("MATHRL_FUSED_LAYER_OPS");
    return !(v && std::strcmp(v, "0") == 0);
  }();
  return enabled;
}

namespace {

void check_rms_norm(const at::Tensor& x, const at::Tensor& weight) {
  MATHRL_CHECK(x.dim() >= 1 && x.size(-1) > 0, "rms_norm: x must be [..., H] with H > 0, got ", x.sizes());
  MATHRL_CHECK(weight.dim() == 1 && weight.size(0) == x.size(-1), "rms_norm: weight must be [", x.size(-1),
               "], got ", weight.sizes());
}

void check_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  MATHRL_CHECK(x.dim() == 4, "rope: x must be [B, T, heads, D], got ", x.sizes());
  MATHRL_CHECK(x.size(3) % 2 == 0, "rope: x must be [B, T, heads, D] with D even, got ", x.sizes());
  for (const at::Tensor* t : {&cos, &sin})
    MATHRL_CHECK(t->dim() == 3 && t->size(0) == x.size(0) && t->size(1) == x.size(1) && t->size(2) == x.size(3),
                 "rope: cos and sin must be [B, T, D] = [", x.size(0), ", ", x.size(1), ", ", x.size(3),
                 "] for x ", x.sizes(), ", got ", t->sizes());
}

void check_swiglu(const at::Tensor& gate_up) {
  MATHRL_CHECK(gate_up.dim() >= 1 && gate_up.size(-1) % 2 == 0,
               "swiglu: gate_up must be [..., 2I] with an even last dim, got ", gate_up.sizes());
}

void check_silu_mul(const at::Tensor& gate, const at::Tensor& up) {
  MATHRL_CHECK(gate.sizes() == up.sizes(), "silu_mul: gate and up must have one shape, got ", gate.sizes(), " and ",
               up.sizes());
}

at::Tensor rotate_half(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

}  // namespace

// ---- references (the model's ATen math) -------------------------------------------------------

at::Tensor rms_norm_reference(const at::Tensor& x, const at::Tensor& weight, double eps) {
  check_rms_norm(x, weight);
  at::Tensor h = x.to(at::kFloat);
  h = h * at::rsqrt(h.pow(2).mean(-1, true) + eps);
  return weight * h.to(x.scalar_type());
}

at::Tensor rope_reference(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  check_rope(x, cos, sin);
  at::Tensor c = cos.unsqueeze(2).to(x.scalar_type()), s = sin.unsqueeze(2).to(x.scalar_type());
  return x * c + rotate_half(x) * s;
}

at::Tensor swiglu_reference(const at::Tensor& gate_up) {
  check_swiglu(gate_up);
  const int64_t inter = gate_up.size(-1) / 2;
  return at::silu(gate_up.narrow(-1, 0, inter)) * gate_up.narrow(-1, inter, inter);
}

at::Tensor silu_mul_reference(const at::Tensor& gate, const at::Tensor& up) {
  check_silu_mul(gate, up);
  return at::silu(gate) * up;
}

namespace {

// Whether an op on these inputs needs an autograd node.
bool needs_graph(std::initializer_list<const at::Tensor*> inputs) {
  if (!at::GradMode::is_enabled()) return false;
  for (const at::Tensor* t : inputs)
    if (t->requires_grad()) return true;
  return false;
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The CPU loops take float32 CPU tensors with a contiguous last dim.
bool cpu_fused(std::initializer_list<const at::Tensor*> inputs) {
  for (const at::Tensor* t : inputs)
    if (!cpu::fused_ops_supported(*t)) return false;
  return fused_layer_ops_enabled();
}

// ---- CPU autograd Functions (training on the CPU)

class CpuRmsNormFunction : public torch::autograd::Function<CpuRmsNormFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight, double eps) {
    at::Tensor rstd;
    at::Tensor y = cpu::rms_norm_forward(x, weight, eps, &rstd);
    ctx->save_for_backward({x, weight, rstd});
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto [dx, dw] = cpu::rms_norm_backward(saved[0], saved[1], saved[2], grads[0], ctx->needs_input_grad(1));
    return {dx, ctx->needs_input_grad(1) ? dw : at::Tensor(), at::Tensor()};
  }
};

class CpuRopeFunction : public torch::autograd::Function<CpuRopeFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
    ctx->save_for_backward({cos, sin});
    return cpu::rope_forward(x, cos, sin);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    return {cpu::rope_backward(grads[0], saved[0], saved[1]), at::Tensor(), at::Tensor()};
  }
};

class CpuSiluMulFunction : public torch::autograd::Function<CpuSiluMulFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& gate, const at::Tensor& up) {
    ctx->save_for_backward({gate, up});
    return cpu::silu_mul_forward(gate, up);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto [d_gate, d_up] = cpu::silu_mul_backward(saved[0], saved[1], grads[0]);
    return {ctx->needs_input_grad(0) ? d_gate : at::Tensor(), ctx->needs_input_grad(1) ? d_up : at::Tensor()};
  }
};

}  // namespace

#ifdef MATHRL_HAVE_CUDA_KERNELS
namespace {

bool fusable(const at::Tensor& t) {
  const auto st = t.scalar_type();
  return t.is_cuda() && (st == at::kFloat || st == at::kBFloat16 || st == at::kHalf) && fused_layer_ops_enabled();
}

void* stream_of(const at::Tensor& t) { return at::cuda::getCurrentCUDAStream(t.device().index()).stream(); }

// ---- RMSNorm

struct RmsNormForward {
  at::Tensor y, rstd;
};

RmsNormForward rms_norm_forward_cuda(const at::Tensor& x, const at::Tensor& weight, double eps) {
  c10::cuda::CUDAGuard guard(x.device());
  const int64_t hidden = x.size(-1), rows = x.numel() / hidden;
  at::Tensor x2 = x.reshape({rows, hidden});  // a view when x's rows are evenly strided, else a copy
  at::Tensor w = weight.contiguous();
  RmsNormForward out{at::empty(x.sizes(), x.options()), at::empty({rows}, x.options().dtype(at::kFloat))};
  cuda::launch_rms_norm_forward(x2.data_ptr(), cuda::dtype_of(x), rows, hidden, x2.stride(0), w.data_ptr(),
                                static_cast<float>(eps), out.y.data_ptr(), out.rstd.data_ptr<float>(), stream_of(x));
  cuda::check_launch("rms_norm forward kernel");
  return out;
}

class RmsNormFunction : public torch::autograd::Function<RmsNormFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight, double eps) {
    RmsNormForward out = rms_norm_forward_cuda(x, weight, eps);
    ctx->save_for_backward({x, weight, out.rstd});
    return out.y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &weight = saved[1], &rstd = saved[2];
    c10::cuda::CUDAGuard guard(x.device());
    const int64_t hidden = x.size(-1), rows = x.numel() / hidden;
    at::Tensor x2 = x.reshape({rows, hidden});
    at::Tensor w = weight.contiguous();
    at::Tensor g = grads[0].to(x.scalar_type()).contiguous();
    at::Tensor grad_x = at::empty(x.sizes(), x.options());
    const bool want_weight = ctx->needs_input_grad(1);
    // Per-block float32 partial sums of dweight, reduced by ATen below.
    at::Tensor partial = want_weight ? at::empty({cuda::rms_norm_backward_blocks(rows), hidden},
                                                 x.options().dtype(at::kFloat))
                                     : at::Tensor();
    cuda::launch_rms_norm_backward(x2.data_ptr(), cuda::dtype_of(x), rows, hidden, x2.stride(0), w.data_ptr(),
                                   g.data_ptr(), rstd.data_ptr<float>(), grad_x.data_ptr(),
                                   want_weight ? partial.data_ptr<float>() : nullptr, stream_of(x));
    cuda::check_launch("rms_norm backward kernel");
    at::Tensor grad_weight = want_weight ? partial.sum(0).to(weight.scalar_type()) : at::Tensor();
    return {grad_x, grad_weight, at::Tensor()};
  }
};

// ---- RoPE

at::Tensor rope_forward_cuda(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  c10::cuda::CUDAGuard guard(x.device());
  const int64_t B = x.size(0), T = x.size(1), heads = x.size(2), D = x.size(3);
  MATHRL_CHECK(heads * D <= std::numeric_limits<int32_t>::max(), "rope: heads * D too large, x ", x.sizes());
  at::Tensor y = at::empty({B, T, heads, D}, x.options());
  cuda::launch_rope_forward(x.data_ptr(), cuda::dtype_of(x), B, T, heads, D, x.stride(0), x.stride(1), x.stride(2),
                            cos.data_ptr<float>(), sin.data_ptr<float>(), y.data_ptr(), stream_of(x));
  cuda::check_launch("rope forward kernel");
  return y;
}

class RopeFunction : public torch::autograd::Function<RopeFunction> {
 public:
  // cos and sin arrive contiguous.
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
    ctx->save_for_backward({cos, sin});
    ctx->saved_data["dtype"] = static_cast<int64_t>(x.scalar_type());
    return rope_forward_cuda(x, cos, sin);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &cos = saved[0], &sin = saved[1];
    const auto dtype = static_cast<at::ScalarType>(ctx->saved_data["dtype"].toInt());
    c10::cuda::CUDAGuard guard(cos.device());
    at::Tensor g = grads[0].to(dtype).contiguous();
    at::Tensor grad_x = at::empty(g.sizes(), g.options());
    cuda::launch_rope_backward(g.data_ptr(), cuda::dtype_of(g), g.size(0), g.size(1), g.size(2), g.size(3),
                               cos.data_ptr<float>(), sin.data_ptr<float>(), grad_x.data_ptr(), stream_of(g));
    cuda::check_launch("rope backward kernel");
    return {grad_x, at::Tensor(), at::Tensor()};
  }
};

// ---- SwiGLU

at::Tensor swiglu_forward_cuda(const at::Tensor& gate_up) {
  c10::cuda::CUDAGuard guard(gate_up.device());
  const int64_t inter = gate_up.size(-1) / 2, rows = inter > 0 ? gate_up.numel() / (2 * inter) : 0;
  std::vector<int64_t> sizes = gate_up.sizes().vec();
  sizes.back() = inter;
  at::Tensor y = at::empty(sizes, gate_up.options());
  cuda::launch_swiglu_forward(gate_up.data_ptr(), cuda::dtype_of(gate_up), rows, inter, y.data_ptr(), stream_of(gate_up));
  cuda::check_launch("swiglu forward kernel");
  return y;
}

class SwigluFunction : public torch::autograd::Function<SwigluFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& gate_up) {
    ctx->save_for_backward({gate_up});
    return swiglu_forward_cuda(gate_up);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor& gate_up = saved[0];
    c10::cuda::CUDAGuard guard(gate_up.device());
    const int64_t inter = gate_up.size(-1) / 2, rows = inter > 0 ? gate_up.numel() / (2 * inter) : 0;
    at::Tensor g = grads[0].to(gate_up.scalar_type()).contiguous();
    at::Tensor grad_gate_up = at::empty(gate_up.sizes(), gate_up.options());
    cuda::launch_swiglu_backward(gate_up.data_ptr(), g.data_ptr(), cuda::dtype_of(gate_up), rows, inter,
                                 grad_gate_up.data_ptr(), stream_of(gate_up));
    cuda::check_launch("swiglu backward kernel");
    return {grad_gate_up};
  }
};

}  // namespace
#endif  // MATHRL_HAVE_CUDA_KERNELS

// ---- dispatch ---------------------------------------------------------------------------------

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  check_rms_norm(x, weight);
#ifdef MATHRL_HAVE_CUDA_KERNELS
  if (fusable(x) && weight.scalar_type() == x.scalar_type() && weight.device() == x.device() && x.stride(-1) == 1) {
    if (!needs_graph({&x, &weight})) return rms_norm_forward_cuda(x, weight, eps).y;
    return RmsNormFunction::apply(x, weight, eps);
  }
#endif
  if (cpu_fused({&x, &weight}))
    return needs_graph({&x, &weight}) ? CpuRmsNormFunction::apply(x, weight, eps) : cpu::rms_norm_forward(x, weight, eps);
  return rms_norm_reference(x, weight, eps);
}

at::Tensor rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  check_rope(x, cos, sin);
#ifdef MATHRL_HAVE_CUDA_KERNELS
  // cos/sin get no gradient here: if they want one, the reference gives it.
  if (fusable(x) && x.stride(3) == 1 && cos.scalar_type() == at::kFloat && sin.scalar_type() == at::kFloat &&
      cos.device() == x.device() && sin.device() == x.device() && !needs_graph({&cos, &sin})) {
    at::Tensor c = cos.contiguous(), s = sin.contiguous();
    if (!needs_graph({&x})) return rope_forward_cuda(x, c, s);
    return RopeFunction::apply(x, c, s);
  }
#endif
  if (cpu_fused({&x, &cos, &sin}) && !needs_graph({&cos, &sin}))
    return needs_graph({&x}) ? CpuRopeFunction::apply(x, cos.contiguous(), sin.contiguous()) : cpu::rope_forward(x, cos, sin);
  return rope_reference(x, cos, sin);
}

at::Tensor swiglu(const at::Tensor& gate_up) {
  check_swiglu(gate_up);
#ifdef MATHRL_HAVE_CUDA_KERNELS
  if (fusable(gate_up) && gate_up.is_contiguous()) {
    if (!needs_graph({&gate_up})) return swiglu_forward_cuda(gate_up);
    return SwigluFunction::apply(gate_up);
  }
#endif
  if (cpu_fused({&gate_up}) && !needs_graph({&gate_up})) return cpu::swiglu_forward(gate_up);
  return swiglu_reference(gate_up);
}

at::Tensor silu_mul(const at::Tensor& gate, const at::Tensor& up) {
  check_silu_mul(gate, up);
  if (cpu_fused({&gate, &up}) && gate.is_contiguous() && up.is_contiguous())
    return needs_graph({&gate, &up}) ? CpuSiluMulFunction::apply(gate, up) : cpu::silu_mul_forward(gate, up);
  return silu_mul_reference(gate, up);
}

}  // namespace mathrl::kernels
