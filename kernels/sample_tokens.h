// One token per row of a batch of logits, for temperature sampling and greedy decoding without
// filters (GRPO rollouts and sampled evaluation, the rollout engine's common case).
//
// Row i with uniform[i] >= 0 draws by inverse CDF: the token is the number of vocabulary entries
// whose cumulative probability under softmax(logits[i] / temperature[i]) (in vocabulary order) is
// <= uniform[i], clamped to V - 1. Row i with uniform[i] < 0 is greedy: the argmax of logits[i]
// (the lowest id on ties) and temperature 1. logprobs[i] = log_softmax(logits[i] / t)[token].
//
// On CUDA one fused kernel reads each row of logits twice in its own dtype (max, argmax and the
// per-warp sums of exp in the first pass; the draw within the one warp range that holds it in the
// second), instead of the ~10 float32 [B, V] passes of the ATen ops the CPU path uses. The two paths
// agree up to float rounding: a token can differ only where u falls within rounding of a CDF step.
// The sampler uses the kernel on CUDA unless MATHRL_FUSED_SAMPLING=0 (tests/kernels/
// sample_tokens_gpu_test.cpp checks it against the ATen path on the GPU machine).
#pragma once
#include <ATen/ATen.h>

namespace mathrl::kernels {

struct SampledTokens {
  at::Tensor tokens;    // [B] int64, on the logits' device
  at::Tensor logprobs;  // [B] float32
};

// logits: [B, V] float32/bf16/fp16 with contiguous rows; temperature, uniform: [B] float32 on the
// logits' device; temperature > 0 on rows that draw.
SampledTokens sample_tokens(const at::Tensor& logits, const at::Tensor& temperature, const at::Tensor& uniform);

// The ATen path (any device), the reference the CUDA kernel is tested against.
SampledTokens sample_tokens_reference(const at::Tensor& logits, const at::Tensor& temperature, const at::Tensor& uniform);

}  // namespace mathrl::kernels
