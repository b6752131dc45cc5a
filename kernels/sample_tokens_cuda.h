// Raw launcher for the CUDA side of sample_tokens (no torch headers, so nvcc stays fast).
#pragma once
#include <cstdint>

#include "token_logprobs_cuda.h"

namespace mathrl::kernels::cuda {

// One block per row; see sample_tokens.h for the semantics.
void launch_sample_tokens(const void* logits, DType dtype, int64_t rows, int64_t vocab, int64_t row_stride,
                          const float* temperature, const float* uniform, int64_t* tokens, float* logprobs,
                          void* stream);

}  // namespace mathrl::kernels::cuda
