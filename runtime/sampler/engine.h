// The rollout engine: requests (prompt ids, n samples, sampling parameters) in, completions out.
// One prefill per prompt; the prompt's other samples read its KV rows in place (shared prefixes,
// when the backend supports them: the prompt's slot stays reserved until its last sample ends) or
// get a copy of them;
// continuous batching (a finished sequence's slot takes the next waiting sample at once); stops on
// EOS, stop strings (checked on the decoded tail, only after a token whose text may complete one)
// or max_new_tokens.
//
// Samples of one request whose tokens so far are identical (common at low entropy: a tuned policy
// often draws the same solution for most of a GRPO group) decode as one row: the first of them,
// the leader, runs through the model and every member samples its own next token from the leader's
// logits with its own RNG. A member whose token differs leaves the class and takes a copy of the
// leader's cache rows past the prompt (DecodeBackend::copy_positions). The output is what separate
// decoding gives; only the work drops (EngineStats::decoded_rows against generated_tokens).
//
// Determinism: sample j of a request draws from the counter RNG keyed by mix_seed(request.seed, j)
// at step t (the token's index in the completion), so a seeded completion is the same whatever the
// batch size, the slot it lands in or the other requests beside it (up to the model's own numerics:
// a backend whose logits change with batch composition can still flip near-ties).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "sampler/backend.h"
#include "sampler/sampling.h"

namespace mathrl {
class Tokenizer;
}

namespace mathrl::sampler {

struct Request {
  std::vector<int32_t> prompt_ids;  // must be non-empty, ids < vocab size
  int n = 1;                        // samples of this prompt (>= 1)
  SamplingParams params;
  uint64_t seed = 0;
  int max_new_tokens = 256;         // >= 1; clamped so prompt + completion fits the context
  std::vector<std::string> stop;    // stop strings (need a tokenizer); the text ends before the stop
  bool ignore_eos = false;
};

struct Completion {
  size_t request = 0;               // index into the requests given to generate()
  int sample = 0;                   // 0..n-1
  std::vector<int32_t> ids;         // generated tokens, including the EOS / stop-completing token
  std::vector<float> logprobs;      // one per id: log_softmax(logits / T)[id] (see sampling.h)
  std::string text;                 // decoded ids without a final EOS, cut before a stop string
  std::string finish_reason;        // "eos" | "stop" | "length"
  int prompt_tokens = 0;
};

struct EngineOptions {
  int64_t max_batch = 64;              // decode slots (sequences in flight)
  std::vector<int32_t> eos_ids;        // any of these ends a sequence (unless ignore_eos)
  const Tokenizer* tokenizer = nullptr;  // for text and stop strings; nullptr = no text
  bool share_identical_samples = true;  // decode identical samples once (above); MATHRL_SHARE_SAMPLES=0 turns it off
  bool split_timing = false;           // fill EngineStats::forward_seconds / sample_seconds (benchmarks)
  // Called around each decode step with its index (0, 1, ...): a profiler's window (bench generate).
  std::function<void(int64_t)> before_decode_step, after_decode_step;
};

struct EngineStats {
  int64_t prefills = 0, prefix_copies = 0, decode_steps = 0, generated_tokens = 0, prompt_tokens = 0;
  int64_t prefix_shares = 0;  // samples that read another slot's prompt instead of a copy
  // Rows run through the model by decode steps (fewer than the sampled rows when identical samples
  // share one), and samples that left a shared row and took a copy of its cache rows.
  int64_t decoded_rows = 0, sampled_rows = 0, forks = 0;
  double prefill_seconds = 0, decode_seconds = 0;
  // With EngineOptions::split_timing: decode_seconds split into the model step and sampling (the
  // device is synchronized after each model step to tell them apart; off by default).
  double forward_seconds = 0, sample_seconds = 0;
  // Host work after each step: appending tokens, EOS and stop-string checks, finished sequences.
  double host_seconds = 0;
  int64_t stop_checks = 0;  // tail decodes for stop strings (only tokens that may complete one)
};

class Engine {
 public:
  Engine(DecodeBackend& backend, EngineOptions options);

  // Validates every request first (UsageError naming the request and field: empty prompt, prompt
  // that fills the context, n < 1, max_new_tokens < 1, id out of range, stop strings without a
  // tokenizer, bad sampling parameters); then generates. Returns all completions ordered by
  // (request, sample); `on_done`, when given, also sees each one as soon as it finishes.
  std::vector<Completion> generate(const std::vector<Request>& requests,
                                   const std::function<void(const Completion&)>& on_done = {});

  const EngineStats& stats() const { return stats_; }

 private:
  void validate(const std::vector<Request>& requests) const;
  DecodeBackend& backend_;
  EngineOptions options_;
  Sampler sampler_;
  EngineStats stats_;
};

}  // namespace mathrl::sampler
