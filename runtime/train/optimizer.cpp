#include "train/optimizer.h"

#include <cmath>
#include <map>

#include <torch/torch.h>

#include "adamw_step.h"
#include "common/error.h"
#include "model/safetensors.h"
#include "token_logprobs.h"  // cuda_kernels_available

namespace mathrl::train {

bool decays(const std::string& name, const at::Tensor& param) {
  (void)name;  // the rule is by shape: matrices decay, vectors (norm weights, biases) do not
  return param.dim() >= 2;
}

AdamW::AdamW(std::vector<std::pair<std::string, at::Tensor>> named_params, AdamWOptions options)
    : options_(options) {
  MATHRL_CHECK(!named_params.empty(), "AdamW: no parameters");
  if (options_.beta1 < 0 || options_.beta1 >= 1 || options_.beta2 < 0 || options_.beta2 >= 1)
    throw UsageError(str("AdamW: betas must be in [0, 1), got {", options_.beta1, ", ", options_.beta2, "}"));
  if (options_.eps <= 0) throw UsageError(str("AdamW: eps must be positive, got ", options_.eps));
  if (options_.weight_decay < 0) throw UsageError(str("AdamW: weight_decay must be >= 0, got ", options_.weight_decay));
  bool any_low = false;
  for (auto& [name, p] : named_params) any_low |= p.scalar_type() != at::kFloat;
  at::NoGradGuard no_grad;
  for (auto& [name, p] : named_params) {
    MATHRL_CHECK(p.is_floating_point(), "AdamW: parameter ", name, " is not floating point");
    names_.push_back(name);
    params_.push_back(p);
    decay_.push_back(decays(name, p));
    auto f32 = p.options().dtype(at::kFloat);
    if (any_low) masters_.push_back(p.detach().to(at::kFloat).clone());
    exp_avg_.push_back(at::zeros(p.sizes(), f32));
    exp_avg_sq_.push_back(at::zeros(p.sizes(), f32));
    step_tensors_.push_back(at::zeros({}, f32));
  }
}

AdamW AdamW::for_module(torch::nn::Module& module, AdamWOptions options) {
  std::vector<std::pair<std::string, at::Tensor>> named;
  for (const auto& item : module.named_parameters(true))
    if (item.value().requires_grad()) named.emplace_back(item.key(), item.value());
  return AdamW(std::move(named), options);
}

void AdamW::zero_grad() {
  for (auto& p : params_)
    if (p.grad().defined()) p.mutable_grad() = at::Tensor();
  accum_live_ = false;
  held_.clear();
}

void AdamW::accumulate_grads() {
  if (masters_.empty()) return;  // float32 gradients already accumulate in float32
  at::NoGradGuard no_grad;
  if (!accum_live_ && held_.empty()) {  // the step's first micro-batch: hold its gradients as they are
    held_.resize(params_.size());
    for (size_t i = 0; i < params_.size(); ++i) {
      held_[i] = params_[i].grad();
      params_[i].mutable_grad() = at::Tensor();
    }
    return;
  }
  if (!accum_live_) {  // the second: the held gradients start the float32 sums
    if (accum_.empty())
      for (const auto& p : params_) accum_.push_back(at::empty(p.sizes(), p.options().dtype(at::kFloat)));
    for (size_t i = 0; i < params_.size(); ++i) {
      if (held_[i].defined()) accum_[i].copy_(held_[i]);
      else accum_[i].zero_();
    }
    held_.clear();
    accum_live_ = true;
  }
  for (size_t i = 0; i < params_.size(); ++i) {
    at::Tensor& p = params_[i];
    if (!p.grad().defined()) continue;
    accum_[i].add_(p.grad());
    p.mutable_grad() = at::Tensor();
  }
}

namespace {

// `grads[i]` as parameter i's gradient (empty list: the parameters' own): zeros where there is
// none, and float32 copies of low-precision ones unless keep_dtype.
std::vector<at::Tensor> step_grads(const std::vector<at::Tensor>& params, const std::vector<at::Tensor>& grads,
                                   bool keep_dtype) {
  std::vector<at::Tensor> out;
  out.reserve(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    const at::Tensor& p = params[i];
    at::Tensor g = grads.empty() ? p.grad() : grads[i];
    if (!g.defined()) g = at::zeros(p.sizes(), keep_dtype ? p.options() : p.options().dtype(at::kFloat));
    else if (!keep_dtype && g.scalar_type() != at::kFloat) g = g.to(at::kFloat);
    out.push_back(g);
  }
  return out;
}

bool all_on_cuda(const std::vector<at::Tensor>& params) {
  for (const auto& p : params)
    if (!p.is_cuda()) return false;
  return true;
}

double global_norm(const std::vector<at::Tensor>& grads) {
  if (grads.empty()) return 0.0;
  std::vector<at::Tensor> norms = at::_foreach_norm(grads, 2, at::kFloat);
  // One host sync per step: stack on the gradients' device when they share one.
  bool same_device = true;
  for (const auto& n : norms) same_device &= n.device() == norms[0].device();
  if (!same_device)
    for (auto& n : norms) n = n.to(at::kCPU);
  return at::stack(norms).norm().item<double>();
}

}  // namespace

std::vector<at::Tensor> AdamW::current_grads(bool low_precision_ok) {
  bool in_params = false;  // gradients of a backward not yet taken out of the parameters
  for (const auto& p : params_) in_params |= p.grad().defined();
  if (!held_.empty() && in_params) accumulate_grads();  // a second micro-batch: sum in float32
  if (accum_live_) {
    accumulate_grads();
    return accum_;
  }
  return step_grads(params_, held_, low_precision_ok);
}

bool AdamW::use_mixed_kernel(bool all_cuda) const {
  return !masters_.empty() && !hook_ && options_.mixed_precision_kernel &&
         options_.fused != AdamWOptions::Fused::Off && all_cuda && kernels::cuda_kernels_available();
}

double AdamW::grad_norm() const {
  at::NoGradGuard no_grad;
  const std::vector<at::Tensor>& base = accum_live_ ? accum_ : held_;
  std::vector<at::Tensor> grads = step_grads(params_, base, false);
  if (!base.empty())  // plus a backward's gradients not yet taken out of the parameters
    for (size_t i = 0; i < params_.size(); ++i)
      if (params_[i].grad().defined()) grads[i] = grads[i] + params_[i].grad();
  return global_norm(grads);
}

StepResult AdamW::step(double lr, double loss) {
  at::NoGradGuard no_grad;
  StepResult r;
  r.lr = lr;
  const bool all_cuda = all_on_cuda(params_);
  const bool mixed = use_mixed_kernel(all_cuda);
  std::vector<at::Tensor> grads = current_grads(mixed);
  if (hook_) hook_(grads);
  r.grad_norm = global_norm(grads);
  if (!std::isfinite(loss) || !std::isfinite(r.grad_norm)) {
    ++skipped_;
    ++consecutive_;
    r.applied = false;
    r.skipped_total = skipped_;
    r.consecutive_skips = consecutive_;
    zero_grad();
    if (options_.nan_guard_limit > 0 && consecutive_ >= options_.nan_guard_limit)
      throw Error(str("training stopped: ", consecutive_, " steps in a row had a non-finite loss or gradient norm "
                      "(last loss ", loss, ", grad norm ", r.grad_norm, "; ", skipped_,
                      " skipped in all). Lower the learning rate, check the data, or resume from the last "
                      "checkpoint; nan_guard_limit sets how many are tolerated"));
    return r;
  }
  consecutive_ = 0;
  double grad_scale = 1.0;  // the clipping factor, applied inside the mixed kernel
  if (options_.clip > 0 && r.grad_norm > options_.clip) {
    double coef = options_.clip / (r.grad_norm + 1e-6);
    if (mixed) grad_scale = coef;
    else at::_foreach_mul_(grads, coef);
  }
  ++steps_;
  std::vector<size_t> with_decay, without_decay;
  for (size_t i = 0; i < params_.size(); ++i) (decay_[i] ? with_decay : without_decay).push_back(i);
  const bool fused = options_.fused == AdamWOptions::Fused::On || (options_.fused == AdamWOptions::Fused::Auto && all_cuda);
  for (auto* idx : {&with_decay, &without_decay}) {
    if (idx->empty()) continue;
    double wd = idx == &with_decay ? options_.weight_decay : 0.0;
    if (mixed) step_mixed(*idx, grads, lr, wd, grad_scale);
    else if (fused) step_fused(*idx, grads, lr, wd);
    else step_plain(*idx, grads, lr, wd);
  }
  if (!masters_.empty() && !mixed)
    for (size_t i = 0; i < params_.size(); ++i) params_[i].copy_(masters_[i]);
  zero_grad();
  r.applied = true;
  r.skipped_total = skipped_;
  return r;
}

// torch.optim.AdamW's single-tensor formula.
void AdamW::step_plain(const std::vector<size_t>& idx, const std::vector<at::Tensor>& grads, double lr, double wd) {
  const double b1 = options_.beta1, b2 = options_.beta2;
  const double bc1 = 1.0 - std::pow(b1, static_cast<double>(steps_));
  const double bc2_sqrt = std::sqrt(1.0 - std::pow(b2, static_cast<double>(steps_)));
  for (size_t i : idx) {
    at::Tensor& p = target(i);
    const at::Tensor& g = grads[i];
    if (wd != 0) p.mul_(1.0 - lr * wd);
    exp_avg_[i].lerp_(g, 1.0 - b1);
    exp_avg_sq_[i].mul_(b2).addcmul_(g, g, 1.0 - b2);
    at::Tensor denom = (exp_avg_sq_[i].sqrt() / bc2_sqrt).add_(options_.eps);
    p.addcdiv_(exp_avg_[i], denom, -lr / bc1);
    step_tensors_[i].fill_(static_cast<double>(steps_));
  }
}

void AdamW::step_fused(const std::vector<size_t>& idx, const std::vector<at::Tensor>& grads, double lr, double wd) {
  std::vector<at::Tensor> ps, gs, ms, vs, ts;
  for (size_t i : idx) {
    ps.push_back(target(i));
    gs.push_back(grads[i]);
    ms.push_back(exp_avg_[i]);
    vs.push_back(exp_avg_sq_[i]);
    ts.push_back(step_tensors_[i]);
  }
  // The caller sets the step counts, the kernel reads them for bias correction (set, not advanced:
  // steps taken by step_mixed do not count them).
  at::_foreach_zero_(ts);
  at::_foreach_add_(ts, static_cast<double>(steps_));
  at::_fused_adamw_(ps, gs, ms, vs, /*max_exp_avg_sqs=*/{}, ts, lr, options_.beta1, options_.beta2, wd, options_.eps,
                    /*amsgrad=*/false, /*maximize=*/false);
}

// kernels/adamw_step: the masters, moments and the model's low-precision weights in one pass, the
// gradients read in their own dtype and multiplied by grad_scale there.
void AdamW::step_mixed(const std::vector<size_t>& idx, const std::vector<at::Tensor>& grads, double lr, double wd,
                       double grad_scale) {
  std::vector<at::Tensor> ms, gs, m1, m2, ps;
  for (size_t i : idx) {
    ms.push_back(masters_[i]);
    gs.push_back(grads[i].contiguous());
    m1.push_back(exp_avg_[i]);
    m2.push_back(exp_avg_sq_[i]);
    ps.push_back(params_[i]);
  }
  kernels::AdamWStep s;
  s.lr = lr, s.beta1 = options_.beta1, s.beta2 = options_.beta2, s.eps = options_.eps, s.weight_decay = wd;
  s.step = steps_, s.grad_scale = grad_scale;
  kernels::adamw_step(ms, gs, m1, m2, ps, s);
}

// ---- state ------------------------------------------------------------------------------------

void AdamW::save(const std::string& path) const {
  std::vector<at::Tensor> keep;  // contiguous CPU copies alive until written
  std::vector<model::TensorBytes> tensors;
  auto add = [&](const std::string& name, const at::Tensor& t) {
    keep.push_back(t.detach().to(at::kCPU, at::kFloat).contiguous());
    const at::Tensor& c = keep.back();
    tensors.push_back({name, "F32", c.sizes().vec(), c.data_ptr(), static_cast<size_t>(c.nbytes())});
  };
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!masters_.empty()) add("master/" + names_[i], masters_[i]);
    add("exp_avg/" + names_[i], exp_avg_[i]);
    add("exp_avg_sq/" + names_[i], exp_avg_sq_[i]);
  }
  std::map<std::string, std::string> meta = {
      {"format", "mathrl-adamw"},
      {"steps", std::to_string(steps_)},
      {"skipped", std::to_string(skipped_)},
      {"consecutive_skips", std::to_string(consecutive_)},
      {"masters", masters_.empty() ? "0" : "1"},
  };
  model::write_safetensors(path, std::move(tensors), meta);
}

void AdamW::load(const std::string& path) {
  model::MappedSafetensors file(path);
  const auto& meta = file.header().metadata;
  auto meta_int = [&](const char* key) -> int64_t {
    auto it = meta.find(key);
    if (it == meta.end()) throw DataError(str(path, ": optimizer state lacks '", key, "'"));
    return std::stoll(it->second);
  };
  at::NoGradGuard no_grad;
  auto fill = [&](const std::string& name, at::Tensor& dst) {
    const model::TensorEntry* e = file.find(name);
    if (!e) throw DataError(str(path, ": optimizer state has no tensor '", name, "' (a different model?)"));
    if (e->dtype != "F32" || e->shape != dst.sizes().vec())
      throw DataError(str(path, ": tensor '", name, "' has the wrong dtype or shape for this model"));
    at::Tensor src = at::from_blob(const_cast<uint8_t*>(file.data(*e)), dst.sizes(), at::kFloat);
    dst.copy_(src);
  };
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!masters_.empty()) {
      if (file.find("master/" + names_[i])) fill("master/" + names_[i], masters_[i]);
      else masters_[i].copy_(params_[i]);  // saved from a float32 run: the weights are the masters
    }
    fill("exp_avg/" + names_[i], exp_avg_[i]);
    fill("exp_avg_sq/" + names_[i], exp_avg_sq_[i]);
  }
  steps_ = meta_int("steps");
  skipped_ = meta_int("skipped");
  consecutive_ = static_cast<int>(meta_int("consecutive_skips"));
  for (auto& t : step_tensors_) t.fill_(static_cast<double>(steps_));
  if (!masters_.empty())
    for (size_t i = 0; i < params_.size(); ++i) params_[i].copy_(masters_[i]);
}

}  // namespace mathrl::train
