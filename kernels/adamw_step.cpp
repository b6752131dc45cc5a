#include "adamw_step.h"

#include <cmath>

#include "common/error.h"
#include "token_logprobs.h"  // cuda_kernels_available

#ifdef MATHRL_HAVE_CUDA_KERNELS
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "adamw_step_cuda.h"
#include "cuda_launch.h"
#endif

namespace mathrl::kernels {

namespace {

void check_lists(const std::vector<at::Tensor>& masters, const std::vector<at::Tensor>& grads,
                 const std::vector<at::Tensor>& exp_avg, const std::vector<at::Tensor>& exp_avg_sq,
                 const std::vector<at::Tensor>& params) {
  const size_t n = masters.size();
  MATHRL_CHECK(grads.size() == n && exp_avg.size() == n && exp_avg_sq.size() == n && (params.empty() || params.size() == n),
               "adamw_step: lists of different lengths (", n, " masters, ", grads.size(), " grads, ", exp_avg.size(),
               " exp_avg, ", exp_avg_sq.size(), " exp_avg_sq, ", params.size(), " params)");
  for (size_t i = 0; i < n; ++i) {
    for (const at::Tensor* t : {&masters[i], &exp_avg[i], &exp_avg_sq[i]})
      MATHRL_CHECK(t->scalar_type() == at::kFloat, "adamw_step: master weights and moments must be float32, tensor ", i,
                   " is ", t->scalar_type());
    MATHRL_CHECK(grads[i].is_floating_point() && grads[i].numel() == masters[i].numel() &&
                     exp_avg[i].numel() == masters[i].numel() && exp_avg_sq[i].numel() == masters[i].numel() &&
                     (params.empty() || params[i].numel() == masters[i].numel()),
                 "adamw_step: tensor ", i, " has mismatched sizes (master ", masters[i].sizes(), ", grad ",
                 grads[i].sizes(), ")");
  }
}

void check_step(const AdamWStep& s) {
  MATHRL_CHECK(s.step >= 1, "adamw_step: step must be >= 1, got ", s.step);
}

// The reference step on checked arguments.
void reference_step(const std::vector<at::Tensor>& masters, const std::vector<at::Tensor>& grads,
                    const std::vector<at::Tensor>& exp_avg, const std::vector<at::Tensor>& exp_avg_sq,
                    const std::vector<at::Tensor>& params, const AdamWStep& s) {
  at::NoGradGuard no_grad;
  const double bias1 = 1.0 - std::pow(s.beta1, static_cast<double>(s.step));
  const double bias2_sqrt = std::sqrt(1.0 - std::pow(s.beta2, static_cast<double>(s.step)));
  for (size_t i = 0; i < masters.size(); ++i) {
    at::Tensor p = masters[i], m = exp_avg[i], v = exp_avg_sq[i];
    at::Tensor g = grads[i].to(at::kFloat).view_as(p) * s.grad_scale;
    p.mul_(1.0 - s.lr * s.weight_decay);
    m.mul_(s.beta1).add_(g, 1.0 - s.beta1);
    v.mul_(s.beta2).addcmul_(g, g, 1.0 - s.beta2);
    p.addcdiv_(m, v.sqrt().div_(bias2_sqrt).add_(s.eps), -s.lr / bias1);
    if (!params.empty()) params[i].copy_(p.view_as(params[i]));
  }
}

}  // namespace

void adamw_step_reference(const std::vector<at::Tensor>& masters, const std::vector<at::Tensor>& grads,
                          const std::vector<at::Tensor>& exp_avg, const std::vector<at::Tensor>& exp_avg_sq,
                          const std::vector<at::Tensor>& params, const AdamWStep& s) {
  check_lists(masters, grads, exp_avg, exp_avg_sq, params);
  check_step(s);
  reference_step(masters, grads, exp_avg, exp_avg_sq, params, s);
}

bool adamw_step_fused(const std::vector<at::Tensor>& masters, const std::vector<at::Tensor>& grads,
                      const std::vector<at::Tensor>& exp_avg, const std::vector<at::Tensor>& exp_avg_sq,
                      const std::vector<at::Tensor>& params) {
  if (!cuda_kernels_available() || masters.empty()) return false;
  const at::Device device = masters[0].device();
  if (!device.is_cuda()) return false;
  auto ok = [&](const at::Tensor& t, bool float_only) {
    const auto dt = t.scalar_type();
    const bool dtype_ok = float_only ? dt == at::kFloat : (dt == at::kFloat || dt == at::kBFloat16 || dt == at::kHalf);
    return t.device() == device && t.is_contiguous() && dtype_ok;
  };
  for (size_t i = 0; i < masters.size(); ++i) {
    if (!ok(masters[i], true) || !ok(exp_avg[i], true) || !ok(exp_avg_sq[i], true) || !ok(grads[i], false)) return false;
    if (!params.empty() && !ok(params[i], false)) return false;
  }
  return true;
}

void adamw_step(const std::vector<at::Tensor>& masters, const std::vector<at::Tensor>& grads,
                const std::vector<at::Tensor>& exp_avg, const std::vector<at::Tensor>& exp_avg_sq,
                const std::vector<at::Tensor>& params, const AdamWStep& s) {
  check_lists(masters, grads, exp_avg, exp_avg_sq, params);
  check_step(s);
#ifdef MATHRL_HAVE_CUDA_KERNELS
  if (adamw_step_fused(masters, grads, exp_avg, exp_avg_sq, params)) {
    const c10::cuda::CUDAGuard guard(masters[0].device());
    void* stream = at::cuda::getCurrentCUDAStream(masters[0].device().index()).stream();
    cuda::AdamWScalars k{};
    k.beta1 = static_cast<float>(s.beta1), k.beta2 = static_cast<float>(s.beta2), k.eps = static_cast<float>(s.eps);
    k.decay = static_cast<float>(1.0 - s.lr * s.weight_decay);
    k.step_size = static_cast<float>(s.lr / (1.0 - std::pow(s.beta1, static_cast<double>(s.step))));
    k.bias2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(s.beta2, static_cast<double>(s.step))));
    k.grad_scale = static_cast<float>(s.grad_scale);
    for (size_t i = 0; i < masters.size(); ++i) {
      void* param = params.empty() ? nullptr : params[i].data_ptr();
      const auto param_dtype = params.empty() ? cuda::DType::BF16 : cuda::dtype_of(params[i]);
      cuda::launch_adamw_step(masters[i].data_ptr<float>(), grads[i].data_ptr(), cuda::dtype_of(grads[i]),
                              exp_avg[i].data_ptr<float>(), exp_avg_sq[i].data_ptr<float>(), param, param_dtype,
                              masters[i].numel(), k, stream);
    }
    cuda::check_launch("adamw_step");
    return;
  }
#endif
  reference_step(masters, grads, exp_avg, exp_avg_sq, params, s);
}

}  // namespace mathrl::kernels
