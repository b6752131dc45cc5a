// Benchmark adapters: one per evaluation set in ../shared/data (data/SOURCES.md describes them),
// turning each record into a Problem with the question text and the reference answer.
#pragma once
#include <string>
#include <vector>

namespace mathrl::eval {

struct Problem {
  std::string id;
  std::string question;  // what the model is asked (options included for multiple choice)
  std::string gold;      // the reference answer: a number, LaTeX, or option letter(s)
  std::string solution;  // a worked solution, where the set has one
  std::string level;     // "Level 3", "grade 4", ... ("" when the set has none)
  std::string subject;
  std::string language = "en";
  bool multiple_choice = false;
};

struct BenchmarkInfo {
  std::string name;
  std::string file;  // relative to the data directory
  std::string description;
};

const std::vector<BenchmarkInfo>& benchmarks();
std::vector<std::string> benchmark_names();

// Loads a benchmark; `path` overrides <data_dir>/<file>. Throws UsageError for an unknown name
// (naming the closest one) and DataError (file:line) for a malformed record, unless
// `skip_malformed` (used for training splits, which have a few records with an empty \boxed{}).
std::vector<Problem> load_benchmark(const std::string& name, const std::string& data_dir, const std::string& path = "",
                                    bool skip_malformed = false);

// The content of the last \boxed{...} (balanced braces; also "\boxed 5"), or "" when there is none.
std::string last_boxed(const std::string& text);

// 145.0 -> "145", 0.5 -> "0.5": the shortest text that reads back as the same double.
std::string format_number(double value);

}  // namespace mathrl::eval
