// Evaluating a model: the benchmark runner (eval/evaluator.h) fed by the rollout engine and checked
// by the native grader. Shared by `mathrl eval` (eval_cli.cpp) and `mathrl.eval.run` in recipes.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "eval/evaluator.h"
#include "model/transformer.h"

namespace mathrl {
class Tokenizer;
}

namespace mathrl::eval {

struct ModelEvalOptions {
  std::vector<std::string> benchmarks;
  std::string data_dir = "../shared/data";
  std::string path;                 // a benchmark file replacing <data_dir>/<file> (one benchmark only)
  PromptStyle style = PromptStyle::ZeroShot;
  std::function<std::string(const Problem&)> prompt;  // replaces the template when set
  int samples = 1;                  // 1 = greedy; more are sampled at `temperature` / `top_p`
  double temperature = 0.7;
  double top_p = 1.0;
  std::vector<int> ks;              // pass@k / maj@k; empty = 1, 2, 4, ... up to samples
  int max_new_tokens = 512;
  int limit = 0;                    // first N problems of each benchmark (0 = all)
  uint64_t seed = 0;                // sample j of problem i draws from (seed, i, j)
  int64_t batch = 256;              // decode slots (capped by the KV-cache memory budget)
  int chunk_problems = 0;           // problems per engine call (0 = all at once; results stream to disk either way)
  std::vector<std::string> stop;    // extra stop strings; the few-shot format's own are always added
  std::string out_dir;              // "" = no files; else <bench>.generations.jsonl, summary.json, summary.md
  bool progress = true;             // progress display on stderr
  std::string model_label;          // the model's directory where known: part of the settings
};

struct GenerationStats {
  std::string benchmark;
  long long completions = 0, generated_tokens = 0, prompt_tokens = 0;
  double seconds = 0;  // generation wall time of this run (resumed problems excluded)
  double prefill_seconds = 0, decode_seconds = 0;  // the engine's own split
  double host_seconds = 0;                         // the engine's token bookkeeping and stop checks
  // With MATHRL_SPLIT_TIMING=1 in the environment: decode_seconds split into model steps and sampling.
  double forward_seconds = 0, sample_seconds = 0;
};

// Checks every benchmark name and loads every file (and the few-shot exemplars) first, so a bad
// name or a missing file fails before any generation. Throws UsageError for an unknown benchmark
// (listing the known ones), DataError for a missing or malformed file.
void check_benchmarks(const ModelEvalOptions& options);

// Runs each benchmark in turn on `model` (its own device and dtype). With out_dir set, an earlier
// run there resumes (its settings must match: see settings_json) and the summaries are written.
std::vector<EvalSummary> evaluate_model(model::Decoder& model, const Tokenizer& tokenizer, const ModelEvalOptions& options,
                                        std::vector<GenerationStats>* stats = nullptr);

// The native grader as the evaluator's checker: extract_answer + math_equal (maj@k groups by it too).
AnswerChecker grader_checker();

// Stop strings for a benchmark's few-shot format (the start of the next exemplar), none zero-shot.
std::vector<std::string> default_stops(const std::string& benchmark, PromptStyle style);

// The settings that decide what is generated (style, sampling, lengths, seed, stops): stored in
// out_dir/eval_settings.json; resuming with different ones is a UsageError.
std::string settings_json(const ModelEvalOptions& options);

}  // namespace mathrl::eval
