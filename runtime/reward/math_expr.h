// A small bounded expression parser/evaluator for LaTeX math answers, used by math_equal to decide
// symbolic equivalence numerically (x^2+2x+1 vs (x+1)^2, 2\sqrt{3} vs \sqrt{12}).
// Internal to runtime/reward; not a general CAS.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mathrl::reward_detail {

enum class Op : unsigned char { Num, Var, Neg, Add, Sub, Mul, Div, Pow, Fact, Sqrt, Sin, Cos, Tan, Ln, Exp, Abs };

struct Node {
  Op op;
  int a = -1, b = -1;    // children
  long double value = 0;  // Num
  int var = -1;           // Var: index into Expr::vars
};

struct Expr {
  std::vector<Node> nodes;
  int root = -1;
  std::vector<std::string> vars;  // variable names (x, y, \theta, x_1)
};

// Limits: a pathological input fails the parse rather than exhausting time or stack.
inline constexpr size_t kMaxExprChars = 2000;
inline constexpr size_t kMaxExprNodes = 4000;
inline constexpr int kMaxExprDepth = 150;

// Parses a normalized answer (no $, \left, \dfrac...). nullopt when it is not a single expression
// this parser understands (text, relations, \infty, unbalanced groups, past the limits).
std::optional<Expr> parse_expr(std::string_view text);

// Evaluates with variable values given by name order of expr.vars. NaN when undefined.
long double evaluate(const Expr& expr, const std::vector<long double>& values);

}  // namespace mathrl::reward_detail
