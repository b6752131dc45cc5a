// Whole-output grading: extract the final answer of a completion and compare it with the reference.
#pragma once
#include <optional>
#include <string>
#include <string_view>

#include "reward/answer_extract.h"
#include "reward/math_equiv.h"

namespace mathrl {

struct GradeResult {
  bool equal = false;
  std::optional<std::string> pred_answer, gold_answer;
};

// `gold` may be a full solution (with \boxed or ####): its answer is extracted then; otherwise it is
// used as given.
GradeResult grade(std::string_view pred_output, std::string_view gold, const ExtractOptions& options = {});

// The reference answer of `gold` as grade() uses it.
std::optional<std::string> gold_answer(std::string_view gold);

}  // namespace mathrl

namespace mathrl::cli {
class Args;
// `mathrl grade [FILE]` (grade_cli.cpp).
int run_grade(const Args& args);
}  // namespace mathrl::cli
