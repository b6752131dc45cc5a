// Per-token log-probabilities of given token sequences, and `mathrl logprobs`.
#pragma once
#include <cstdint>
#include <vector>

#include "model/transformer.h"

namespace mathrl::model {

// For each sequence, log p(ids[t + 1] | ids[0..t]) for t = 0..len-2 (len - 1 values), in float32.
// Sequences are right-padded into one batch (causal attention: padding after a sequence never
// affects it); the log-softmax runs chunked through kernels/token_logprobs.
std::vector<std::vector<float>> sequence_logprobs(Decoder& model, const std::vector<std::vector<int32_t>>& sequences);

}  // namespace mathrl::model

namespace mathrl::cli {
class Args;
int run_logprobs(const Args& args);
}  // namespace mathrl::cli
