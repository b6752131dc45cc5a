#include "eval/prompts.h"

#include <algorithm>

#include "common/error.h"
#include "common/jsonl.h"
#include "common/strings.h"

namespace mathrl::eval {

namespace {

bool is_math_style(const std::string& benchmark) {
  return benchmark == "math" || benchmark == "math500" || benchmark == "minerva_math" || benchmark == "ocw";
}

const char* kInstructSuffix = "\nPlease reason step by step, and put your final answer within \\boxed{}.";

}  // namespace

std::string strip_calculator_annotations(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size();) {
    if (text.compare(i, 2, "<<") == 0) {
      size_t end = text.find(">>", i + 2);
      if (end != std::string::npos) {
        i = end + 2;
        continue;
      }
    }
    out += text[i++];
  }
  return out;
}

std::vector<Problem> default_exemplars(const std::string& benchmark, const std::string& data_dir, int count) {
  if (is_math_style(benchmark)) {
    if (count < 0) count = 4;
    // The shortest Level 1-2 solutions from MATH train, one subject after another for variety.
    auto pool = load_benchmark("math", data_dir, data_dir + "/math/train.jsonl", true);
    std::vector<Problem> eligible;
    for (auto& p : pool)
      if ((p.level == "Level 1" || p.level == "Level 2") && p.solution.size() < 400 && !p.gold.empty())
        eligible.push_back(p);
    std::stable_sort(eligible.begin(), eligible.end(),
                     [](const Problem& a, const Problem& b) { return a.solution.size() < b.solution.size(); });
    std::vector<Problem> shots;
    std::vector<std::string> subjects;
    for (auto& p : eligible) {
      if (static_cast<int>(shots.size()) >= count) break;
      if (std::find(subjects.begin(), subjects.end(), p.subject) != subjects.end()) continue;
      subjects.push_back(p.subject);
      shots.push_back(p);
    }
    return shots;
  }
  if (count < 0) count = benchmark == "gsm8k" ? 8 : 4;
  auto pool = load_benchmark("gsm8k", data_dir, data_dir + "/gsm8k/train.jsonl", true);
  if (static_cast<int>(pool.size()) < count) throw DataError("gsm8k/train.jsonl has too few problems for the exemplars");
  pool.resize(static_cast<size_t>(count));
  return pool;
}

std::string format_exemplar(const std::string& benchmark, const Problem& shot) {
  if (is_math_style(benchmark))
    return str("Problem:\n", shot.question, "\n\nSolution:\n", shot.solution, "\nFinal Answer: The final answer is $",
               shot.gold, "$. I hope it is correct.\n\n");
  return str("Question: ", shot.question, "\nAnswer: ", strip_calculator_annotations(shot.solution),
             " The answer is ", shot.gold, ".\n\n");
}

std::string build_prompt(const std::string& benchmark, const Problem& problem, PromptStyle style,
                         const std::vector<Problem>& exemplars) {
  if (style == PromptStyle::ZeroShot) return problem.question + kInstructSuffix;
  std::string prompt;
  for (const auto& shot : exemplars) prompt += format_exemplar(benchmark, shot);
  if (is_math_style(benchmark)) return prompt + str("Problem:\n", problem.question, "\n\nSolution:\n");
  return prompt + str("Question: ", problem.question, "\nAnswer:");
}

}  // namespace mathrl::eval
