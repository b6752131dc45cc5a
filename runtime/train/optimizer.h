// AdamW over a decoder's parameters, with fp32 master weights for bf16/fp16 models, global-norm
// gradient clipping and a NaN/inf guard. The trainers of every stage (base, instruct, RL) step
// through this class.
//
// Master weights: when a parameter is not float32 the optimizer keeps a float32 copy; the step
// updates the copy and writes it back rounded to the parameter's dtype, so small updates are not
// lost to bf16 rounding. Moments (exp_avg, exp_avg_sq) are float32.
//
// Weight decay rule: decay applies to parameters with two or more dimensions (linear weights,
// embeddings, the LM head); one-dimensional parameters (RMSNorm weights, biases) are not decayed.
//
// Paths: bf16/fp16 models on CUDA step through kernels/adamw_step (the low-precision gradients read
// as they are, clipping and the write-back of the masters in the same pass); float32 models on CUDA
// use ATen's fused kernel (at::_fused_adamw_); CPU (and `fused = Off`) uses a per-tensor loop of
// in-place ops computing the same formula as torch.optim.AdamW.
//
// Gradient accumulation of low-precision models: the first micro-batch's gradients are only held
// (no float32 buffer exists for a step of one micro-batch); from the second on they are summed in
// float32 accumulators.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

namespace torch::nn {
class Module;
}

namespace mathrl::train {

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;  // decoupled (AdamW); applied per the rule above
  double clip = 1.0;          // max global gradient norm; <= 0 disables clipping
  int nan_guard_limit = 5;    // this many non-finite steps in a row stop the run (0 = never stop)
  // Auto: ATen's fused kernel when every parameter is on CUDA, the plain loop otherwise.
  // On: the fused kernel on any device (ATen has a CPU one too). Off: always the plain loop.
  enum class Fused { Auto, On, Off } fused = Fused::Auto;
  // Low-precision models on CUDA with fused != Off: kernels/adamw_step instead of float32 gradient
  // copies + ATen's fused kernel + a copy back (off: the latter, e.g. to compare the two). Not with
  // a gradient hook (data parallelism reduces float32 gradients).
  bool mixed_precision_kernel = true;
};

// True when `name`/`param` get weight decay under the rule above.
bool decays(const std::string& name, const at::Tensor& param);

struct StepResult {
  bool applied = false;         // false when the guard skipped the step
  double grad_norm = 0.0;       // global L2 norm before clipping (NaN/inf when non-finite)
  double lr = 0.0;
  int64_t skipped_total = 0;    // non-finite steps skipped so far in this run
  int consecutive_skips = 0;
};

class AdamW {
 public:
  // Called after backward and before the norm, on every parameter's gradient (undefined gradients
  // are replaced by zeros first). A data-parallel run all-reduces (sums) them here.
  using GradHook = std::function<void(std::vector<at::Tensor>& grads)>;

  AdamW(std::vector<std::pair<std::string, at::Tensor>> named_params, AdamWOptions options);
  // Every trainable parameter of the module, by its (Hugging Face) name.
  static AdamW for_module(torch::nn::Module& module, AdamWOptions options);

  void set_grad_hook(GradHook hook) { hook_ = std::move(hook); }

  // One optimizer step at learning rate `lr`. `loss` is the step's loss (for the guard only).
  // Non-finite loss or gradient norm: the step is skipped (parameters and moments untouched) and
  // counted; after nan_guard_limit in a row throws mathrl::Error with a message saying what to do.
  // Gradients are zeroed afterwards either way.
  StepResult step(double lr, double loss);
  void zero_grad();

  // For low-precision models: takes the parameters' current gradients out of the parameters (call
  // it after each micro-batch's backward) so that gradient accumulation sums in float32 rather than
  // in bf16: the first micro-batch's are held as they are, later ones summed with them into float32
  // accumulators. step() includes and clears them. A no-op for float32 models.
  void accumulate_grads();

  // Global L2 norm of the current gradients (what step() clips), without changing them.
  double grad_norm() const;

  // Checkpoint state: a safetensors file with master weights (when kept), moments, the step count
  // and the guard's counters. load() checks names and shapes against this optimizer's parameters.
  void save(const std::string& path) const;
  void load(const std::string& path);

  int64_t steps() const { return steps_; }        // applied steps
  int64_t skipped() const { return skipped_; }    // skipped (non-finite) steps
  const AdamWOptions& options() const { return options_; }
  const std::vector<std::string>& names() const { return names_; }
  const std::vector<at::Tensor>& params() const { return params_; }
  bool has_masters() const { return !masters_.empty(); }

 private:
  void step_plain(const std::vector<size_t>& idx, const std::vector<at::Tensor>& grads, double lr, double wd);
  void step_fused(const std::vector<size_t>& idx, const std::vector<at::Tensor>& grads, double lr, double wd);
  void step_mixed(const std::vector<size_t>& idx, const std::vector<at::Tensor>& grads, double lr, double wd,
                  double grad_scale);
  at::Tensor& target(size_t i) { return masters_.empty() ? params_[i] : masters_[i]; }
  // The step's gradients, zeros where a parameter has none: float32 (accumulators or converted
  // copies), or with `low_precision_ok` the held/current gradients in the parameters' dtype when
  // the step had one micro-batch.
  std::vector<at::Tensor> current_grads(bool low_precision_ok);
  bool use_mixed_kernel(bool all_cuda) const;

  AdamWOptions options_;
  std::vector<std::string> names_;
  std::vector<at::Tensor> params_;    // the model's tensors (any dtype)
  std::vector<at::Tensor> masters_;   // float32 copies, empty when every parameter is float32
  std::vector<at::Tensor> exp_avg_, exp_avg_sq_;
  std::vector<at::Tensor> step_tensors_;  // per-parameter step counters for the fused kernel
  std::vector<at::Tensor> accum_;         // float32 gradient accumulators (low-precision models)
  bool accum_live_ = false;               // accum_ holds gradients of the current step
  std::vector<at::Tensor> held_;          // the first micro-batch's gradients (low-precision; empty: none)
  std::vector<bool> decay_;
  GradHook hook_;
  int64_t steps_ = 0, skipped_ = 0;
  int consecutive_ = 0;
};

}  // namespace mathrl::train
