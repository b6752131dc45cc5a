// Per-token log-probabilities without materializing the whole batch's logits.
//
// RL and evaluation need log p(target_t | prefix) for every completion token. Computing
// hidden @ W^T for all N tokens at once costs N x V floats (for N = 64k tokens and V = 100k that is
// 26 GB in fp32). Here rows are processed in chunks: each chunk's logits exist only in the compute
// dtype, a fused pass computes logsumexp, the target logit and the entropy, and backward recomputes
// the chunk's logits instead of saving them. CUDA kernels do the fused pass on GPU; the CPU path
// uses ATen ops with the same chunking.
#pragma once
#include <ATen/ATen.h>

namespace mathrl::kernels {

struct TokenLogprobOptions {
  double temperature = 1.0;  // logits are divided by this first (GRPO scores at the sampling temperature)
  int64_t chunk_rows = 0;    // rows per chunk; 0 picks one so a chunk's logits stay near 256 MiB
  bool with_entropy = false; // also return the entropy of each row's distribution (no gradient)
};

struct TokenLogprobs {
  at::Tensor logprobs;  // [N] float32, differentiable w.r.t. hidden and weight
  at::Tensor entropy;   // [N] float32 when requested, else undefined
};

// hidden: [N, H]; weight: [V, H] (the LM head); targets: [N] int64 in [0, V).
TokenLogprobs token_logprobs(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
                             const TokenLogprobOptions& options = {});

// The fused pass over one chunk of logits [n, V]: fills lse [n], target logit [n] and (optionally)
// entropy [n], all float32, after dividing logits by `temperature`. Exposed for tests.
void logsumexp_gather(const at::Tensor& logits, const at::Tensor& targets, double temperature, at::Tensor& lse,
                      at::Tensor& target_logit, at::Tensor* entropy);

// In place on a chunk of logits [n, V]: logits := g * (onehot(target) - softmax(logits / T)) / T,
// the gradient of sum_i g_i * logprob_i with respect to the logits. Exposed for tests.
void logprob_grad_inplace(at::Tensor& logits, const at::Tensor& targets, const at::Tensor& lse,
                          const at::Tensor& grad, double temperature);

bool cuda_kernels_available();  // built with CUDA kernels (they still need a GPU at run time)

}  // namespace mathrl::kernels
