// Math-aware answer equivalence: LaTeX normalization, exact numbers, sets/tuples/intervals,
// matrices, multiple choice, equations, and numeric evaluation of symbolic expressions.
#pragma once
#include <string>
#include <string_view>

namespace mathrl {

// True when the predicted answer equals the reference answer. Bounded: inputs longer than
// kMaxAnswerChars, too deeply nested or too large to evaluate compare unequal (never hang or crash).
bool math_equal(std::string_view pred, std::string_view gold);

// The canonical text form math_equal compares first (exposed for tests and debugging).
std::string normalize_answer(std::string_view answer);

inline constexpr size_t kMaxAnswerChars = 2000;

}  // namespace mathrl
