// Runs a benchmark: prompts -> completions (from any generator) -> extracted answers -> verdicts ->
// accuracy, pass@k and maj@k with confidence intervals, broken down by level and subject. Every
// completion is appended to generations.jsonl as it is graded, so an interrupted evaluation resumes
// where it stopped.
#pragma once
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "eval/metrics.h"
#include "eval/prompts.h"

namespace mathrl::eval {

// n completions for each prompt, in order. The sampler provides the real one; tests script it.
using GenerateFn = std::function<std::vector<std::vector<std::string>>(const std::vector<std::string>& prompts, int n)>;
// Streaming form: also told each prompt's problem index (its position in the benchmark file), so a
// sampler can seed by problem and a resumed evaluation draws exactly the samples it would have; it
// calls `done(prompt, samples)` once per prompt, in any order, as soon as that prompt's n samples
// are finished, so every finished problem is on disk even if the run is killed.
using PromptDone = std::function<void(size_t prompt, const std::vector<std::string>& samples)>;
using IndexedGenerateFn = std::function<void(const std::vector<std::string>& prompts, const std::vector<size_t>& problems,
                                             int n, const PromptDone& done)>;

struct AnswerChecker {
  std::function<std::optional<std::string>(const std::string& completion)> extract;
  std::function<bool(const std::string& pred, const std::string& gold)> equal;
};

struct EvalOptions {
  std::string benchmark;
  std::string data_dir = "../shared/data";
  std::string path;                 // overrides the benchmark's file
  PromptStyle style = PromptStyle::ZeroShot;
  int samples = 1;                  // completions per problem (1 = greedy)
  std::vector<int> ks;              // for pass@k and maj@k; empty = 1, 2, 4, ... up to samples
  int limit = 0;                    // first N problems only (0 = all)
  int batch_problems = 64;          // problems handed to the generator at once (<= 0: all)
  std::string out_dir;              // generations.jsonl is written here ("" = nowhere, no resume)
  std::function<std::string(const Problem&)> prompt;  // replaces the built-in template when set
  // Called once before generating, with the problems left to do after resuming (for progress).
  std::function<void(size_t todo, size_t total)> on_start;
  // Called after each problem is graded (for a running accuracy).
  std::function<void(size_t problem, const std::vector<SampledAnswer>& samples)> on_graded;
};

struct MetricSet {
  Interval accuracy;  // mean correctness over all samples (pass@1; greedy accuracy with one sample)
  std::map<int, Interval> pass_at;
  std::map<int, Interval> maj_at;
  int problems = 0;
};

struct EvalSummary {
  std::string benchmark;
  int samples = 1;
  MetricSet overall;
  std::map<std::string, MetricSet> by_level;
  std::map<std::string, MetricSet> by_subject;
  int resumed_problems = 0;  // read back from an earlier, interrupted run
};

EvalSummary run_eval(const EvalOptions& options, const GenerateFn& generate, const AnswerChecker& checker);
EvalSummary run_eval(const EvalOptions& options, const IndexedGenerateFn& generate, const AnswerChecker& checker);

std::string summary_json(const EvalSummary& s);
// One table row per benchmark: accuracy and each pass@k / maj@k, with 95% intervals.
std::string summary_markdown(const std::vector<EvalSummary>& summaries);

}  // namespace mathrl::eval
