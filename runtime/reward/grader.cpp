#include "reward/grader.h"

#include "common/strings.h"

namespace mathrl {

std::optional<std::string> gold_answer(std::string_view gold) {
  if (has_answer_marker(gold)) {
    ExtractOptions strict;
    strict.last_number_fallback = false;
    if (auto a = extract_answer(gold, strict)) return a;
  }
  gold = trim(gold);
  if (gold.empty()) return std::nullopt;
  return std::string(gold);
}

namespace {

// A prediction with no answer marker that is itself short and on one line ("\left( 3, \frac{\pi}{2}
// \right)", "x = 5") is taken whole as the answer before any last-number fallback.
std::optional<std::string> bare_answer(std::string_view pred) {
  if (has_answer_marker(pred)) return std::nullopt;
  pred = trim(pred);
  if (pred.empty() || pred.size() > 160 || pred.find('\n') != std::string_view::npos) return std::nullopt;
  return std::string(pred);
}

}  // namespace

GradeResult grade(std::string_view pred_output, std::string_view gold, const ExtractOptions& options) {
  GradeResult r;
  r.gold_answer = gold_answer(gold);
  r.pred_answer = extract_answer(pred_output, options);
  if (!r.gold_answer) return r;
  if (r.pred_answer && math_equal(*r.pred_answer, *r.gold_answer)) {
    r.equal = true;
  } else if (auto whole = bare_answer(pred_output); whole && whole != r.pred_answer && math_equal(*whole, *r.gold_answer)) {
    r.equal = true;
    r.pred_answer = whole;
  }
  return r;
}

}  // namespace mathrl
