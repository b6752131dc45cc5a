#include "reward/math_expr.h"

#include <cctype>
#include <cmath>
#include <numbers>

namespace mathrl::reward_detail {
namespace {

struct Fail {};  // thrown internally on any parse error; caught in parse_expr

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}

  Expr run() {
    int root = parse_sum();
    skip();
    if (pos_ != s_.size()) throw Fail{};
    expr_.root = root;
    return std::move(expr_);
  }

 private:
  std::string_view s_;
  size_t pos_ = 0;
  int depth_ = 0;
  Expr expr_;

  struct DepthGuard {
    int& d;
    explicit DepthGuard(int& depth) : d(depth) {
      if (++d > kMaxExprDepth) throw Fail{};
    }
    ~DepthGuard() { --d; }
  };

  void skip() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n')) ++pos_;
  }
  char peek() {
    skip();
    return pos_ < s_.size() ? s_[pos_] : '\0';
  }
  bool eat(char c) {
    if (peek() == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!eat(c)) throw Fail{};
  }
  // The command name at pos_ (after '\'), without consuming it.
  std::string_view command_at() {
    skip();
    if (pos_ >= s_.size() || s_[pos_] != '\\') return {};
    size_t j = pos_ + 1;
    while (j < s_.size() && is_alpha(s_[j])) ++j;
    return s_.substr(pos_ + 1, j - pos_ - 1);
  }
  bool eat_command(std::string_view name) {
    if (command_at() == name && !name.empty()) {
      pos_ += 1 + name.size();
      return true;
    }
    return false;
  }

  int add(Node n) {
    if (expr_.nodes.size() >= kMaxExprNodes) throw Fail{};
    expr_.nodes.push_back(n);
    return static_cast<int>(expr_.nodes.size()) - 1;
  }
  int num(long double v) { return add(Node{Op::Num, -1, -1, v, -1}); }
  int unary(Op op, int a) { return add(Node{op, a, -1, 0, -1}); }
  int binary(Op op, int a, int b) { return add(Node{op, a, b, 0, -1}); }
  int var(std::string name) {
    for (size_t i = 0; i < expr_.vars.size(); ++i)
      if (expr_.vars[i] == name) return add(Node{Op::Var, -1, -1, 0, static_cast<int>(i)});
    expr_.vars.push_back(std::move(name));
    return add(Node{Op::Var, -1, -1, 0, static_cast<int>(expr_.vars.size()) - 1});
  }

  int parse_sum() {
    DepthGuard g(depth_);
    int left = parse_product();
    while (true) {
      if (eat('+')) left = binary(Op::Add, left, parse_product());
      else if (eat('-')) left = binary(Op::Sub, left, parse_product());
      else return left;
    }
  }

  // Can the next token start a factor (for implicit multiplication)?
  bool starts_factor() {
    char c = peek();
    if (is_digit(c) || is_alpha(c) || c == '(' || c == '{' || c == '[' || c == '.') return true;
    if (c == '\\') {
      auto cmd = command_at();
      return !(cmd.empty() || cmd == "cdot" || cmd == "times" || cmd == "div");
    }
    return false;
  }

  int parse_product() {
    DepthGuard g(depth_);
    int left = parse_unary();
    while (true) {
      if (eat('*') || eat_command("cdot") || eat_command("times")) left = binary(Op::Mul, left, parse_unary());
      else if (eat('/') || eat_command("div")) left = binary(Op::Div, left, parse_unary());
      else if (starts_factor()) left = binary(Op::Mul, left, parse_power());
      else return left;
    }
  }

  int parse_unary() {
    DepthGuard g(depth_);
    if (eat('-')) return unary(Op::Neg, parse_unary());
    if (eat('+')) return parse_unary();
    return parse_power();
  }

  int parse_power() {
    DepthGuard g(depth_);
    int base = parse_postfix(parse_primary());
    if (eat('^')) {
      int exponent = parse_script();
      return parse_postfix(binary(Op::Pow, base, exponent));
    }
    return base;
  }

  int parse_postfix(int node) {
    while (true) {
      if (eat('!')) node = unary(Op::Fact, node);
      else if (eat('%')) node = binary(Op::Div, node, num(100));
      else return node;
    }
  }

  // A superscript / \frac argument: {group}, one digit, one letter, a command, or a signed one.
  int parse_script() {
    DepthGuard g(depth_);
    char c = peek();
    if (c == '{') {
      ++pos_;
      int e = parse_sum();
      expect('}');
      return e;
    }
    if (c == '-') {
      ++pos_;
      return unary(Op::Neg, parse_script());
    }
    if (is_digit(c)) {
      ++pos_;
      return num(c - '0');
    }
    if (is_alpha(c)) return parse_primary();
    if (c == '\\' || c == '(') return parse_primary();
    throw Fail{};
  }

  std::string parse_subscript_name() {
    // x_1, x_{12}, a_n: the subscript becomes part of the variable name.
    std::string out = "_";
    if (eat('{')) {
      size_t start = pos_;
      int depth = 1;
      while (pos_ < s_.size() && depth > 0) {
        if (s_[pos_] == '{') ++depth;
        else if (s_[pos_] == '}') --depth;
        ++pos_;
      }
      if (depth != 0) throw Fail{};
      out.append(s_.substr(start, pos_ - start - 1));
    } else if (pos_ < s_.size() && (is_alpha(s_[pos_]) || is_digit(s_[pos_]))) {
      out.push_back(s_[pos_++]);
    } else {
      throw Fail{};
    }
    return out;
  }

  int parse_group(char open, char close) {
    expect(open);
    int e = parse_sum();
    expect(close);
    return e;
  }

  int parse_primary() {
    DepthGuard g(depth_);
    char c = peek();
    if (is_digit(c) || c == '.') {
      size_t start = pos_;
      while (pos_ < s_.size() && is_digit(s_[pos_])) ++pos_;
      if (pos_ < s_.size() && s_[pos_] == '.') {
        ++pos_;
        while (pos_ < s_.size() && is_digit(s_[pos_])) ++pos_;
      }
      std::string text(s_.substr(start, pos_ - start));
      if (text == ".") throw Fail{};
      if (text.size() > 60) throw Fail{};
      return num(std::strtold(text.c_str(), nullptr));
    }
    if (is_alpha(c)) {
      ++pos_;
      if (c == 'e' && (pos_ >= s_.size() || s_[pos_] != '_')) return num(std::numbers::e_v<long double>);
      std::string name(1, c);
      if (pos_ < s_.size() && s_[pos_] == '_') {
        ++pos_;
        name += parse_subscript_name();
      }
      return var(std::move(name));
    }
    if (c == '(') return parse_group('(', ')');
    if (c == '[') return parse_group('[', ']');
    if (c == '{') return parse_group('{', '}');
    if (c == '|') {
      ++pos_;
      int e = parse_sum();
      expect('|');
      return unary(Op::Abs, e);
    }
    if (c == '\\') return parse_command();
    throw Fail{};
  }

  int parse_function_argument() {
    // \sin x, \sin(x), \sin{x}, \sin 2x: take one power-level factor (2x binds as in common usage).
    int arg = parse_power();
    return arg;
  }

  int parse_command() {
    std::string_view cmd = command_at();
    if (cmd.empty()) throw Fail{};
    pos_ += 1 + cmd.size();
    if (cmd == "frac" || cmd == "cfrac") {
      int n = parse_script();
      int d = parse_script();
      return binary(Op::Div, n, d);
    }
    if (cmd == "sqrt") {
      int index = -1;
      if (eat('[')) {
        index = parse_sum();
        expect(']');
      }
      int radicand = parse_script();
      if (index < 0) return unary(Op::Sqrt, radicand);
      return binary(Op::Pow, radicand, binary(Op::Div, num(1), index));
    }
    if (cmd == "pi") return num(std::numbers::pi_v<long double>);
    if (cmd == "mathrm" || cmd == "mathbf" || cmd == "operatorname") {
      // \mathrm{e} is Euler's number; other names are treated as their letters.
      return parse_script();
    }
    Op fn;
    bool is_fn = true;
    if (cmd == "sin") fn = Op::Sin;
    else if (cmd == "cos") fn = Op::Cos;
    else if (cmd == "tan") fn = Op::Tan;
    else if (cmd == "ln" || cmd == "log") fn = Op::Ln;
    else if (cmd == "exp") fn = Op::Exp;
    else is_fn = false;
    if (is_fn) {
      int base = -1;
      if (cmd == "log" && eat('_')) base = parse_script();
      int power = -1;
      if (eat('^')) power = parse_script();
      int arg = parse_function_argument();
      int value = unary(fn, arg);
      if (base >= 0) value = binary(Op::Div, value, unary(Op::Ln, base));
      if (power >= 0) value = binary(Op::Pow, value, power);
      return value;
    }
    static const char* greek[] = {"alpha", "beta",  "gamma", "delta", "theta", "lambda", "mu",
                                  "phi",   "varphi", "omega", "rho",  "sigma", "tau",    "psi"};
    for (const char* name : greek)
      if (cmd == name) return var(std::string("\\") + name);
    throw Fail{};  // \infty, \cup, \le, unknown commands: not an expression we can evaluate
  }
};

long double factorial(long double x) {
  if (!(x >= 0) || x > 170 || std::floor(x) != x) return NAN;
  return std::tgamma(x + 1);
}

long double eval_node(const Expr& e, int i, const std::vector<long double>& vals) {
  const Node& n = e.nodes[i];
  switch (n.op) {
    case Op::Num: return n.value;
    case Op::Var: return vals[n.var];
    case Op::Neg: return -eval_node(e, n.a, vals);
    case Op::Add: return eval_node(e, n.a, vals) + eval_node(e, n.b, vals);
    case Op::Sub: return eval_node(e, n.a, vals) - eval_node(e, n.b, vals);
    case Op::Mul: return eval_node(e, n.a, vals) * eval_node(e, n.b, vals);
    case Op::Div: {
      long double d = eval_node(e, n.b, vals);
      if (d == 0) return NAN;
      return eval_node(e, n.a, vals) / d;
    }
    case Op::Pow: {
      long double base = eval_node(e, n.a, vals), ex = eval_node(e, n.b, vals);
      if (std::fabs(ex) > 1e6L) return NAN;  // 10^{10^{10}}: not comparable numerically
      return std::pow(base, ex);
    }
    case Op::Fact: return factorial(eval_node(e, n.a, vals));
    case Op::Sqrt: return std::sqrt(eval_node(e, n.a, vals));
    case Op::Sin: return std::sin(eval_node(e, n.a, vals));
    case Op::Cos: return std::cos(eval_node(e, n.a, vals));
    case Op::Tan: return std::tan(eval_node(e, n.a, vals));
    case Op::Ln: return std::log(eval_node(e, n.a, vals));
    case Op::Exp: return std::exp(eval_node(e, n.a, vals));
    case Op::Abs: return std::fabs(eval_node(e, n.a, vals));
  }
  return NAN;
}

}  // namespace

std::optional<Expr> parse_expr(std::string_view text) {
  if (text.empty() || text.size() > kMaxExprChars) return std::nullopt;
  try {
    Parser p(text);
    return p.run();
  } catch (const Fail&) {
    return std::nullopt;
  }
}

long double evaluate(const Expr& expr, const std::vector<long double>& values) {
  if (expr.root < 0 || values.size() < expr.vars.size()) return NAN;
  return eval_node(expr, expr.root, values);
}

}  // namespace mathrl::reward_detail
