// Raw launchers for the CUDA side of token_logprobs (no torch headers, so nvcc stays fast).
#pragma once
#include <cstdint>

namespace mathrl::kernels::cuda {

enum class DType { F32, BF16, F16 };

// One block per row: online max/sum over the row, then the target logit and entropy.
void launch_logsumexp_gather(const void* logits, DType dtype, int64_t rows, int64_t vocab, int64_t row_stride,
                             const int64_t* targets, float inv_temperature, float* lse, float* target_logit,
                             float* entropy, void* stream);

// logits[i, j] := g_i * ([j == t_i] - exp(logits[i, j] * invT - lse_i)) * invT, in the logits' dtype.
void launch_logprob_grad(void* logits, DType dtype, int64_t rows, int64_t vocab, int64_t row_stride,
                         const int64_t* targets, const float* lse, const float* grad, float inv_temperature,
                         void* stream);

// Returns the last CUDA error as text, or nullptr when there is none.
const char* last_error();

}  // namespace mathrl::kernels::cuda
