// The native grader as seen from sandboxed reward code: a `mathrl_grader` table with
// equal(pred, gold), extract(text) and grade(output, gold). The grader is injected as plain
// functions so this library does not depend on how runtime/reward spells its API.
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
  // The final answer in a completion (last \boxed{...}), or nullopt when there is none.
  std::function<std::optional<std::string>(std::string_view text)> extract;
  // Whole-output grading; when empty, extract + equal.
  std::function<bool(std::string_view output, std::string_view gold)> grade;
};

// The grader used when RewardHostOptions::grader is left empty. For now the fallback below; to be
// switched to the native grader (runtime/reward) once its header exists.
GraderFns default_grader();

// Fallback used until/unless mathrl_reward is linked: last balanced \boxed{...}, and equality
// after removing spaces and `$`, comparing as numbers when both sides parse as numbers.
GraderFns fallback_grader();

// Sets the global `mathrl_grader` in L. `fns` must outlive the state.
void open_grader_module(lua_State* L, const GraderFns* fns);

}  // namespace mathrl::reward_lua
