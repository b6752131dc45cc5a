// The native grader as seen from sandboxed reward code: a `mathrl_grader` table with
// equal(pred, gold), extract(text [, fallback]) and grade(output, gold [, fallback]). The grader is
// injected as plain functions so tests (and recipes embedding their own) can replace it.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <lua.hpp>

namespace mathrl::reward_lua {

struct GraderFns {
  // True when the predicted answer equals the reference (math-aware comparison).
  std::function<bool(std::string_view pred, std::string_view gold)> equal;
  // The final answer in a completion (\boxed, "The answer is", ####, ...), or nullopt when there is
  // none; `last_number_fallback` also accepts the last number in the text.
  std::function<std::optional<std::string>(std::string_view text, bool last_number_fallback)> extract;
  // Whole-output grading (a gold that is a full solution has its answer extracted first); when
  // empty, extract + equal.
  std::function<bool(std::string_view output, std::string_view gold, bool last_number_fallback)> grade;
};

// The native grader (runtime/reward: extract_answer, math_equal, grade). `equal` extracts the gold
// answer first when the gold is a full solution (GSM8K's "#### 18", a MATH solution's \boxed{}).
GraderFns default_grader();

// Sets the global `mathrl_grader` in L. `fns` must outlive the state.
void open_grader_module(lua_State* L, const GraderFns* fns);

}  // namespace mathrl::reward_lua
