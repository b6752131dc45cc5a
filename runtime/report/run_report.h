// report.md for a run directory: the accuracy table by stage (greedy, pass@k, maj@k) from the
// evaluator's summary.json files, SVG plots under <run>/plots/ (losses; reward, KL, completion
// length and accuracy over RL steps; pass@k and maj@k against k by stage) and the final value of
// every logged metric. Reads metrics.jsonl of the run and of its stage sub-directories.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace mathrl::report {

// One metrics.jsonl: tag -> (step, value) in file order. null values (NaN/inf) are skipped.
using MetricSeries = std::map<std::string, std::vector<std::pair<double, double>>>;
MetricSeries read_metrics_jsonl(const std::string& path);

// The overall block of one benchmark's evaluation summary (eval::summary_json).
struct EvalResult {
  std::string stage;      // from the path: <run>/eval/<stage>/summary.json -> "<stage>"
  std::string benchmark;
  int samples = 1, problems = 0;
  double accuracy = 0;    // greedy accuracy when samples == 1, else mean sample correctness
  std::map<int, double> pass_at, maj_at;
};
// A summary.json: one eval::summary_json object, or `mathrl eval`'s {"settings", "results": [...]}.
std::vector<EvalResult> read_eval_summary(const std::string& path, const std::string& stage);

// Every summary.json under the run directory; a stage is named by the file's directory relative to
// the run with "eval" parts dropped, and a last part that is "greedy", "sampled" or the benchmark's
// name ("eval/rl" -> "rl", "rl/eval/gsm8k" -> "rl", "eval/rl/greedy" -> "rl"). Sorted in pipeline
// order (tokenizer, base, instruct, rl, then the rest as found).
std::vector<EvalResult> find_eval_results(const std::string& run_dir);

struct ReportOptions {
  std::string title;  // "" = "Run <directory name>"
};

// Writes <run>/report.md and <run>/plots/*.svg; returns the path of report.md. Throws DataError
// when the directory does not exist or a metrics/summary file is malformed.
std::string write_run_report(const std::string& run_dir, const ReportOptions& options = {});

}  // namespace mathrl::report
