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
  int batch_problems = 64;          // problems handed to the generator at once
  std::string out_dir;              // generations.jsonl is written here ("" = nowhere, no resume)
  std::function<std::string(const Problem&)> prompt;  // replaces the built-in template when set
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

std::string summary_json(const EvalSummary& s);
// One table row per benchmark: accuracy and each pass@k / maj@k, with 95% intervals.
std::string summary_markdown(const std::vector<EvalSummary>& summaries);

}  // namespace mathrl::eval
