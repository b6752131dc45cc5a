#include "reward/math_equiv.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <optional>
#include <vector>

#include "common/strings.h"
#include "reward/math_expr.h"

namespace mathrl {
namespace {

using reward_detail::Expr;

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }


void replace_all(std::string& s, std::string_view from, std::string_view to) {
  if (s.find(from) == std::string::npos) return;
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (true) {
    size_t p = s.find(from, i);
    if (p == std::string::npos) break;
    out.append(s, i, p - i);
    out.append(to);
    i = p + from.size();
  }
  out.append(s, i, std::string::npos);
  s.swap(out);
}

// Removes a LaTeX command (e.g. \left) unless it is a prefix of a longer name (\leftarrow), or,
// with `keep_with_argument`, when a braced argument follows (\text{cm} is handled elsewhere).
void remove_command(std::string& s, std::string_view cmd, bool keep_with_argument = false) {
  size_t p = 0;
  while ((p = s.find(cmd, p)) != std::string::npos) {
    size_t end = p + cmd.size();
    if (end < s.size() && (is_alpha(s[end]) || (keep_with_argument && s[end] == '{'))) {
      p = end;
      continue;
    }
    s.erase(p, cmd.size());
  }
}

// ",\!" is LaTeX's thousands separator (10,\!080): spaces around it do not make a list.
void join_thousands_marks(std::string& s) {
  size_t p = 0;
  while ((p = s.find(',', p)) != std::string::npos) {
    size_t q = p + 1;
    while (q < s.size() && s[q] == ' ') ++q;
    if (s.compare(q, 2, "\\!") != 0) {
      ++p;
      continue;
    }
    q += 2;
    while (q < s.size() && s[q] == ' ') ++q;
    s.erase(p + 1, q - p - 1);
    ++p;
  }
}

// Index of the '}' matching the '{' at `open`, or npos.
size_t matching_brace(std::string_view s, size_t open) {
  int depth = 0;
  for (size_t i = open; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && (s[i + 1] == '{' || s[i + 1] == '}')) {
      ++i;
      continue;
    }
    if (s[i] == '{') ++depth;
    else if (s[i] == '}' && --depth == 0) return i;
  }
  return std::string_view::npos;
}

bool unit_like(std::string_view c) {
  c = trim(c);
  if (c.empty() || !is_alpha(c.front())) return false;
  for (char ch : c)
    if (!(is_alpha(ch) || is_digit(ch) || ch == ' ' || ch == '^' || ch == '.' || ch == '/' || ch == '{' ||
          ch == '}' || ch == '-'))
      return false;
  return true;
}

// \text{...}: trailing units after a value are dropped, any other text keeps its content.
void strip_text_commands(std::string& s) {
  for (int guard = 0; guard < 64; ++guard) {
    size_t p = s.find("\\text{");
    if (p == std::string::npos) return;
    size_t open = p + 5;
    size_t close = matching_brace(s, open);
    if (close == std::string::npos) return;
    std::string content = s.substr(open + 1, close - open - 1);
    bool trailing = trim(std::string_view(s).substr(close + 1)).empty();
    std::string_view before = trim(std::string_view(s).substr(0, p));
    bool value_before = !before.empty() && (is_digit(before.back()) || before.back() == '}' ||
                                            before.back() == ')' || is_alpha(before.back()));
    if (trailing && value_before && unit_like(content)) {
      s.erase(p);
    } else {
      s.replace(p, close - p + 1, std::string(trim(content)));
    }
  }
}

// "5 cm", "10 dollars": plain words after a number are units.
void strip_plain_units(std::string& s) {
  size_t i = s.size();
  while (i > 0 && (is_alpha(s[i - 1]) || s[i - 1] == ' ' || s[i - 1] == '^' || is_digit(s[i - 1]))) {
    if (s[i - 1] == ' ' && i >= 2 && is_digit(s[i - 2])) {
      std::string_view tail = trim(std::string_view(s).substr(i));
      if (!tail.empty() && is_alpha(tail.front())) {
        bool words = true;
        for (char c : tail) words = words && (is_alpha(c) || c == ' ' || c == '^' || is_digit(c));
        // Only when the head is a plain number: "2 x" must stay an expression.
        std::string_view head = trim(std::string_view(s).substr(0, i - 1));
        bool numeric = !head.empty();
        for (char c : head) numeric = numeric && (is_digit(c) || c == '.' || c == ',' || c == '-');
        if (words && numeric && tail.size() >= 2) {
          s.erase(i - 1);
          return;
        }
      }
    }
    --i;
  }
}

std::string normalize_impl(std::string_view in) {
  std::string s(trim(in));
  if (s.size() >= 4 && s.compare(0, 2, "\\(") == 0 && s.compare(s.size() - 2, 2, "\\)") == 0)
    s = s.substr(2, s.size() - 4);
  if (s.size() >= 4 && s.compare(0, 2, "\\[") == 0 && s.compare(s.size() - 2, 2, "\\]") == 0)
    s = s.substr(2, s.size() - 4);
  replace_all(s, "\\$", "");  // a currency sign, not math mode
  s.erase(std::remove(s.begin(), s.end(), '$'), s.end());
  for (char& c : s)
    if (c == '\n' || c == '\t' || c == '\r') c = ' ';
  replace_all(s, "\\dfrac", "\\frac");
  replace_all(s, "\\tfrac", "\\frac");
  remove_command(s, "\\left");
  remove_command(s, "\\right");
  remove_command(s, "\\displaystyle");
  remove_command(s, "\\bigl");
  remove_command(s, "\\bigr");
  // LaTeX row breaks (\\) are set aside first, so that a row break before a space is not read as the space command.
  replace_all(s, "\\\\", "\x01");
  join_thousands_marks(s);
  for (std::string_view sp : {"\\!", "\\,", "\\;", "\\:", "\\ ", "~"}) replace_all(s, sp, sp == "\\ " ? " " : "");
  replace_all(s, "\x01", "\\\\");
  replace_all(s, "{,}", ",");
  replace_all(s, "\\%", "%");
  replace_all(s, "^{\\circ}", "");
  replace_all(s, "^\\circ", "");
  replace_all(s, "\\circ", "");
  replace_all(s, "\xC2\xB0", "");  // °
  remove_command(s, "\\degree");
  replace_all(s, "\\mbox{", "\\text{");
  replace_all(s, "\\textbf{", "\\text{");
  replace_all(s, "\\textit{", "\\text{");
  replace_all(s, "\\textrm{", "\\text{");
  replace_all(s, "\\mathrm{", "\\text{");
  replace_all(s, "\\mathbf{", "\\text{");
  remove_command(s, "\\text", true);  // "\text 5" without braces
  if (s.find("\\text{") != std::string::npos) strip_text_commands(s);
  replace_all(s, "\\cdot", "*");
  replace_all(s, "\\times", "*");
  replace_all(s, "\\div", "/");
  replace_all(s, "\\leq", "\\le");
  replace_all(s, "\\geq", "\\ge");
  replace_all(s, "\\infinity", "\\infty");
  replace_all(s, "degrees", "");
  replace_all(s, "degree", "");
  s = std::string(trim(s));
  strip_plain_units(s);
  // Spaces go, except between two letters ("\pi r", "New York") where they separate tokens, and
  // after a comma before a digit: "58, 500" is a list of two numbers, "58,500" one number.
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == ' ') {
      bool letters = !out.empty() && is_alpha(out.back()) && i + 1 < s.size() && is_alpha(s[i + 1]);
      size_t next = i;
      while (next < s.size() && s[next] == ' ') ++next;
      bool list_comma = !out.empty() && out.back() == ',' && next < s.size() && is_digit(s[next]);
      if ((letters || list_comma) && out.back() != ' ') out.push_back(' ');
      continue;
    }
    out.push_back(s[i]);
  }
  while (!out.empty() && (out.back() == '.' || out.back() == ' ')) out.pop_back();
  while (out.size() >= 2 && out.front() == '{' && matching_brace(out, 0) == out.size() - 1)
    out = out.substr(1, out.size() - 2);
  if (!out.empty() && out.front() == '+') out.erase(0, 1);
  return out;
}

// ---- exact and approximate numbers -----------------------------------------------------------

struct Number {
  long double value = 0;
  bool exact = false;  // p/q valid
  __int128 p = 0, q = 1;
  bool integer = false;
  bool percent = false;
};

// Unsigned integer digits (at most 18 so products fit in __int128).
std::optional<__int128> parse_digits(std::string_view s) {
  if (s.empty() || s.size() > 18) return std::nullopt;
  __int128 v = 0;
  for (char c : s) {
    if (!is_digit(c)) return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

// Digits with optional thousands separators "1,234,567" (groups of three) -> plain digits.
std::optional<std::string> strip_thousands(std::string_view s) {
  if (s.find(',') == std::string_view::npos) return std::string(s);
  std::string out;
  size_t first = s.find(',');
  if (first == 0 || first > 3) return std::nullopt;
  size_t i = 0;
  size_t group = 0;
  for (char c : s) {
    if (c == ',') {
      if (i != first && group != 3) return std::nullopt;
      group = 0;
    } else {
      if (!is_digit(c)) return std::nullopt;
      out.push_back(c);
      ++group;
    }
    ++i;
  }
  if (group != 3) return std::nullopt;
  return out;
}

// Decimal: [-]digits[.digits][e[-]N] with optional thousands commas in the integer part.
std::optional<Number> parse_decimal(std::string_view s) {
  Number n;
  bool neg = false;
  if (!s.empty() && (s.front() == '-' || s.front() == '+')) {
    neg = s.front() == '-';
    s.remove_prefix(1);
  }
  if (s.empty()) return std::nullopt;
  int exp10 = 0;
  // Scientific notation: 1.5e3, 1.5*10^{3}, 1.5*10^3.
  size_t e = std::string_view::npos;
  for (std::string_view mark : {std::string_view("*10^"), std::string_view("e"), std::string_view("E")}) {
    e = s.find(mark);
    if (e != std::string_view::npos) {
      std::string_view ex = s.substr(e + mark.size());
      if (!ex.empty() && ex.front() == '{' && ex.back() == '}') ex = ex.substr(1, ex.size() - 2);
      bool eneg = false;
      if (!ex.empty() && (ex.front() == '-' || ex.front() == '+')) {
        eneg = ex.front() == '-';
        ex.remove_prefix(1);
      }
      auto ev = parse_digits(ex);
      if (!ev || *ev > 400) return std::nullopt;
      exp10 = static_cast<int>(*ev) * (eneg ? -1 : 1);
      s = s.substr(0, e);
      break;
    }
  }
  size_t dot = s.find('.');
  std::string_view int_part = dot == std::string_view::npos ? s : s.substr(0, dot);
  std::string_view frac_part = dot == std::string_view::npos ? std::string_view() : s.substr(dot + 1);
  if (int_part.empty() && frac_part.empty()) return std::nullopt;
  auto plain = strip_thousands(int_part);
  if (!plain) return std::nullopt;
  for (char c : *plain)
    if (!is_digit(c)) return std::nullopt;
  for (char c : frac_part)
    if (!is_digit(c)) return std::nullopt;
  std::string all = *plain + std::string(frac_part);
  std::string text = (neg ? "-" : "") + (plain->empty() ? std::string("0") : *plain) + "." +
                     std::string(frac_part) + "e" + std::to_string(exp10);
  n.value = std::strtold(text.c_str(), nullptr);
  // Exact form when it fits: digits / 10^frac_len * 10^exp10.
  size_t start = all.find_first_not_of('0');
  std::string_view sig = start == std::string::npos ? std::string_view("0") : std::string_view(all).substr(start);
  int scale = exp10 - static_cast<int>(frac_part.size());
  if (sig.size() <= 18 && std::abs(scale) <= 18 && static_cast<int>(sig.size()) + scale <= 18) {
    __int128 p = *parse_digits(sig);
    __int128 q = 1;
    for (int k = 0; k < std::abs(scale); ++k) (scale > 0 ? p : q) *= 10;
    n.exact = true;
    n.p = neg ? -p : p;
    n.q = q;
    n.integer = (n.p % n.q) == 0;
  }
  return n;
}

// Signed integer for fraction parts, e.g. "-3" or "{-3}".
std::optional<__int128> parse_int(std::string_view s) {
  if (s.size() >= 2 && s.front() == '{' && s.back() == '}') s = s.substr(1, s.size() - 2);
  bool neg = false;
  if (!s.empty() && s.front() == '-') {
    neg = true;
    s.remove_prefix(1);
  }
  auto v = parse_digits(s);
  if (!v) return std::nullopt;
  return neg ? -*v : *v;
}

std::optional<Number> make_fraction(__int128 p, __int128 q, bool neg) {
  if (q == 0) return std::nullopt;
  Number n;
  n.exact = true;
  n.p = neg ? -p : p;
  n.q = q;
  if (n.q < 0) {
    n.q = -n.q;
    n.p = -n.p;
  }
  n.value = static_cast<long double>(n.p) / static_cast<long double>(n.q);
  n.integer = n.p % n.q == 0;
  return n;
}

std::optional<Number> parse_number(std::string_view s) {
  if (s.empty() || s.size() > 80) return std::nullopt;
  bool percent = false;
  if (s.back() == '%') {
    percent = true;
    s.remove_suffix(1);
  }
  bool neg = false;
  std::string_view body = s;
  if (!body.empty() && body.front() == '-') {
    neg = true;
    body.remove_prefix(1);
  }
  std::optional<Number> n;
  if (body.substr(0, 5) == "\\frac") {
    // \frac{a}{b} or \frac ab with integer a, b
    std::string_view rest = body.substr(5);
    std::string_view a, b;
    auto take = [&](std::string_view& from, std::string_view& arg) {
      if (from.empty()) return false;
      if (from.front() == '{') {
        size_t close = matching_brace(from, 0);
        if (close == std::string_view::npos) return false;
        arg = from.substr(1, close - 1);
        from = from.substr(close + 1);
      } else {
        arg = from.substr(0, 1);
        from = from.substr(1);
      }
      return true;
    };
    if (take(rest, a) && take(rest, b) && rest.empty()) {
      auto pa = parse_int(a), pb = parse_int(b);
      if (pa && pb) n = make_fraction(*pa, *pb, neg);
    }
  } else if (size_t slash = body.find('/'); slash != std::string_view::npos) {
    auto pa = parse_int(body.substr(0, slash)), pb = parse_int(body.substr(slash + 1));
    if (pa && pb) n = make_fraction(*pa, *pb, neg);
  } else {
    n = parse_decimal(s);
  }
  if (!n) return std::nullopt;
  n->percent = percent;
  return n;
}

bool close_enough(long double a, long double b, long double rel) {
  if (a == b) return true;
  if (!std::isfinite(a) || !std::isfinite(b)) return false;
  return std::fabs(a - b) <= rel * std::max(std::fabs(a), std::fabs(b)) || std::fabs(a - b) <= 1e-12L;
}

bool near_integer(long double v) {
  return std::fabs(v) < 1e15L && std::fabs(v - std::round(v)) <= 1e-9L * std::max(1.0L, std::fabs(v));
}

// Constants (no variables): integers compare exactly, anything else within rel 1e-4.
bool constants_equal(long double a, long double b) {
  if (!std::isfinite(a) || !std::isfinite(b)) return false;
  if (near_integer(a) && near_integer(b)) return std::round(a) == std::round(b);
  return close_enough(a, b, 1e-4L);
}

// A decimal written to d places with at least 3 significant digits equals a fraction that rounds
// to it (0.3333 = 1/3, 0.667 = 2/3), but 0.33 is too coarse to stand for 1/3.
bool decimal_rounds_to(const Number& dec, const Number& frac) {
  if (!dec.exact || !frac.exact || dec.q <= 1) return false;
  __int128 q = dec.q;
  int places = 0;
  while (q % 10 == 0) q /= 10, ++places;
  if (q != 1 || places > 15) return false;
  __int128 mag = dec.p < 0 ? -dec.p : dec.p;
  int digits = 0;
  for (__int128 m = mag; m > 0; m /= 10) ++digits;
  __int128 fp = frac.p < 0 ? -frac.p : frac.p;
  if (digits < 3 || fp > static_cast<__int128>(1e20) || (dec.p < 0) != (frac.p < 0)) return false;
  __int128 scaled = fp * dec.q;  // |frac| * 10^places, rounded half up
  __int128 rounded = (2 * scaled + frac.q) / (2 * frac.q);
  return rounded == mag;
}

bool numbers_equal(const Number& a, const Number& b) {
  auto same = [](const Number& x, const Number& y) {
    if (x.exact && y.exact) {
      if (x.p * y.q == y.p * x.q) return true;
      if (x.integer && y.integer) return false;
      if (decimal_rounds_to(x, y) || decimal_rounds_to(y, x)) return true;
    }
    if (x.integer && y.integer) return constants_equal(x.value, y.value);
    return close_enough(x.value, y.value, 1e-4L);
  };
  auto scaled = [](Number n) {  // n% as a fraction
    if (n.exact && n.q <= (static_cast<__int128>(1) << 100)) n.q *= 100;
    else n.exact = false;
    n.value /= 100;
    n.integer = n.exact && n.p % n.q == 0;
    return n;
  };
  if (same(a, b)) return true;
  if (a.percent && !b.percent) return same(scaled(a), b);
  if (b.percent && !a.percent) return same(a, scaled(b));
  return false;
}

// ---- structure ----------------------------------------------------------------------------

// Splits at a top-level string token such as "\cup" or "\\".
std::vector<std::string_view> split_top_str(std::string_view s, std::string_view token) {
  std::vector<std::string_view> parts;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s.compare(i, token.size(), token) == 0 && depth == 0) {
      parts.push_back(s.substr(start, i - start));
      i += token.size() - 1;
      start = i + 1;
      continue;
    }
    char c = s[i];
    if (c == '\\' && i + 1 < s.size() && (s[i + 1] == '{' || s[i + 1] == '}')) {
      depth += s[i + 1] == '{' ? 1 : -1;
      ++i;
      continue;
    }
    if (c == '(' || c == '[' || c == '{') ++depth;
    else if (c == ')' || c == ']' || c == '}') --depth;
  }
  parts.push_back(s.substr(start));
  return parts;
}

// Splits at top-level `sep` (outside (), [], {} ). Returns {s} when there is none.
std::vector<std::string_view> split_top(std::string_view s, char sep) { return split_top_str(s, std::string_view(&sep, 1)); }

// True when the first and last characters are brackets that enclose everything between them,
// e.g. "(1,2)" or "[1,2)" but not "(1)+(2)".
bool outer_brackets_enclose(std::string_view s) {
  int depth = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '(' || c == '[' || c == '{') ++depth;
    else if (c == ')' || c == ']' || c == '}') {
      if (--depth == 0 && i + 1 != s.size()) return false;
    }
  }
  return depth == 0;
}

bool wrapped(std::string_view s, char open) { return s.size() >= 2 && s.front() == open && outer_brackets_enclose(s); }

std::optional<char> choice_letter(std::string_view s) {
  if (s.size() == 1 && s[0] >= 'A' && s[0] <= 'J') return s[0];
  if (s.size() == 3 && s[0] == '(' && s[2] == ')' && s[1] >= 'A' && s[1] <= 'J') return s[1];
  if (s.size() == 2 && s[1] == ')' && s[0] >= 'A' && s[0] <= 'J') return s[0];
  // "(B) 12" / "(B)12": an option with its text
  if (s.size() > 3 && s[0] == '(' && s[2] == ')' && s[1] >= 'A' && s[1] <= 'J') return s[1];
  return std::nullopt;
}

// Position of a top-level '=' that is not part of <=, >=, !=, or npos.
size_t top_level_equals(std::string_view s) {
  int depth = 0;
  size_t found = std::string_view::npos;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '(' || c == '[' || c == '{') ++depth;
    else if (c == ')' || c == ']' || c == '}') --depth;
    else if (c == '=' && depth == 0) {
      if (i > 0 && (s[i - 1] == '<' || s[i - 1] == '>' || s[i - 1] == '!')) continue;
      found = i;  // the last one: "x = y = 3" -> "3"
    }
  }
  return found;
}

// "x", "y_1", "f(x)", "\theta", "AB": a name that can be dropped from "name = value".
bool simple_lhs(std::string_view s) {
  if (s.empty() || s.size() > 20) return false;
  for (char c : s)
    if (!(is_alpha(c) || is_digit(c) || c == '_' || c == '\\' || c == '(' || c == ')' || c == '{' || c == '}' ||
          c == ',' || c == '\''))
      return false;
  return is_alpha(s.front()) || s.front() == '\\';
}

struct Context {
  long long budget = 400000;  // characters of sub-comparisons, so nested structures stay bounded
};

bool equal_norm(std::string_view p, std::string_view g, Context& ctx, int depth);

// Greedy unordered matching of two element lists.
bool unordered_equal(const std::vector<std::string_view>& a, const std::vector<std::string_view>& b, Context& ctx,
                     int depth) {
  if (a.size() != b.size() || a.size() > 64) return false;
  std::vector<bool> used(b.size(), false);
  for (auto x : a) {
    bool hit = false;
    for (size_t j = 0; j < b.size() && !hit; ++j)
      if (!used[j] && equal_norm(trim(x), trim(b[j]), ctx, depth + 1)) used[j] = hit = true;
    if (!hit) return false;
  }
  return true;
}

bool ordered_equal(const std::vector<std::string_view>& a, const std::vector<std::string_view>& b, Context& ctx,
                   int depth) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!equal_norm(trim(a[i]), trim(b[i]), ctx, depth + 1)) return false;
  return true;
}

// pmatrix/bmatrix/matrix: rows of cells, or nullopt.
std::optional<std::vector<std::vector<std::string_view>>> parse_matrix(std::string_view s) {
  size_t b = s.find("\\begin{");
  if (b != 0) return std::nullopt;
  size_t name_end = s.find('}', 7);
  if (name_end == std::string_view::npos) return std::nullopt;
  std::string_view env = s.substr(7, name_end - 7);
  std::string end_tag = "\\end{" + std::string(env) + "}";
  if (s.size() < end_tag.size() || s.substr(s.size() - end_tag.size()) != end_tag) return std::nullopt;
  std::string_view body = s.substr(name_end + 1, s.size() - end_tag.size() - name_end - 1);
  std::vector<std::vector<std::string_view>> rows;
  for (auto row : split_top_str(body, "\\\\")) {
    row = trim(row);
    if (row.empty()) continue;
    rows.push_back(split_top(row, '&'));
  }
  if (rows.empty()) return std::nullopt;
  return rows;
}

bool values_equal(std::string_view p, std::string_view g, Context& ctx);

bool equal_norm(std::string_view p, std::string_view g, Context& ctx, int depth) {
  ctx.budget -= static_cast<long long>(p.size() + g.size()) + 1;
  if (ctx.budget < 0 || depth > 6) return false;
  if (p == g) return !p.empty();
  if (p.empty() || g.empty()) return false;

  // Multiple choice.
  auto gc = choice_letter(g);
  auto pc = choice_letter(p);
  if (gc && (pc || g.size() <= 3)) return pc && *pc == *gc;

  // Equations: "x = 3" vs "3"; both equations compare side by side.
  size_t pe = top_level_equals(p), ge = top_level_equals(g);
  if (pe != std::string_view::npos && ge != std::string_view::npos) {
    if (equal_norm(trim(p.substr(0, pe)), trim(g.substr(0, ge)), ctx, depth + 1) &&
        equal_norm(trim(p.substr(pe + 1)), trim(g.substr(ge + 1)), ctx, depth + 1))
      return true;
    return false;
  }
  if (pe != std::string_view::npos) {
    std::string_view lhs = trim(p.substr(0, p.find('=')));
    if (simple_lhs(lhs)) return equal_norm(trim(p.substr(pe + 1)), g, ctx, depth + 1);
    return false;
  }
  if (ge != std::string_view::npos) {
    std::string_view lhs = trim(g.substr(0, g.find('=')));
    if (simple_lhs(lhs)) return equal_norm(p, trim(g.substr(ge + 1)), ctx, depth + 1);
    return false;
  }
  // "x \in [1,2]"
  for (auto* side : {&p, &g}) {
    size_t in = side->find("\\in");
    if (in != std::string_view::npos && in + 3 < side->size() && !is_alpha((*side)[in + 3]) &&
        simple_lhs(trim(side->substr(0, in))))
      *side = trim(side->substr(in + 3));
  }

  // Unions of intervals/sets.
  auto pu = split_top_str(p, "\\cup"), gu = split_top_str(g, "\\cup");
  if (pu.size() > 1 || gu.size() > 1) return unordered_equal(pu, gu, ctx, depth);

  // Matrices.
  if (p.compare(0, 7, "\\begin{") == 0 || g.compare(0, 7, "\\begin{") == 0) {
    auto pm = parse_matrix(p), gm = parse_matrix(g);
    if (!pm || !gm || pm->size() != gm->size()) return false;
    for (size_t r = 0; r < pm->size(); ++r)
      if (!ordered_equal((*pm)[r], (*gm)[r], ctx, depth)) return false;
    return true;
  }

  // Sets \{...\}: order does not matter.
  auto is_set = [](std::string_view s) {
    return s.size() >= 4 && s.compare(0, 2, "\\{") == 0 && s.compare(s.size() - 2, 2, "\\}") == 0;
  };
  if (is_set(p) || is_set(g)) {
    if (!is_set(p) || !is_set(g)) return false;
    return unordered_equal(split_top(p.substr(2, p.size() - 4), ','), split_top(g.substr(2, g.size() - 4), ','),
                           ctx, depth);
  }

  // Tuples and intervals: brackets and order matter.
  auto bracketed = [](std::string_view s) {
    if (s.size() < 2) return false;
    char o = s.front(), c = s.back();
    return (o == '(' || o == '[') && (c == ')' || c == ']') && outer_brackets_enclose(s);
  };
  bool pb = bracketed(p), gb = bracketed(g);
  if (pb && gb) {
    auto pp = split_top(p.substr(1, p.size() - 2), ','), gp = split_top(g.substr(1, g.size() - 2), ',');
    if (pp.size() > 1 || gp.size() > 1) {
      if (p.front() != g.front() || p.back() != g.back()) return false;
      return ordered_equal(pp, gp, ctx, depth);
    }
  }
  // Bare lists "1, 2" (not thousands separators): unordered, as solutions list roots in any order.
  auto pl = split_top(p, ','), gl = split_top(g, ',');
  if (pl.size() > 1 || gl.size() > 1) {
    bool pthousands = pl.size() > 1 && parse_number(p).has_value();
    bool gthousands = gl.size() > 1 && parse_number(g).has_value();
    if (!pthousands && !gthousands) {
      if (pb != gb && (pb || gb)) {
        // "(1,2)" vs "1,2": compare the tuple's elements in order
        std::string_view pin = pb ? p.substr(1, p.size() - 2) : p, gin = gb ? g.substr(1, g.size() - 2) : g;
        auto a = split_top(pin, ','), b = split_top(gin, ',');
        if (a.size() > 1 && b.size() > 1) return ordered_equal(a, b, ctx, depth);
      }
      if (pl.size() > 1 && gl.size() > 1) return unordered_equal(pl, gl, ctx, depth);
      return false;
    }
  }
  return values_equal(p, g, ctx);
}

long double point_value(const std::string& name, int k) {
  // Fixed pseudo-random values in (0.5, 2.5), distinct per variable and point.
  uint64_t h = 1469598103934665603ull;
  for (char c : name) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  h ^= static_cast<uint64_t>(k + 1) * 0x9E3779B97F4A7C15ull;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return 0.5L + 2.0L * static_cast<long double>(h % 1000003) / 1000003.0L;
}

bool values_equal(std::string_view p, std::string_view g, Context& ctx) {
  auto pn = parse_number(p), gn = parse_number(g);
  if (pn && gn) return numbers_equal(*pn, *gn);
  // A percent sign on one side only: compare without it too.
  auto strip_pct = [](std::string_view s) { return !s.empty() && s.back() == '%' ? s.substr(0, s.size() - 1) : s; };
  auto pe = reward_detail::parse_expr(strip_pct(p));
  if (!pe) return false;
  auto ge = reward_detail::parse_expr(strip_pct(g));
  if (!ge) return false;
  ctx.budget -= static_cast<long long>(pe->nodes.size() + ge->nodes.size()) * 8;
  if (ctx.budget < 0) return false;
  // Union of variables, each given the same values on both sides.
  std::vector<std::string> names = pe->vars;
  for (auto& v : ge->vars)
    if (std::find(names.begin(), names.end(), v) == names.end()) names.push_back(v);
  auto values_for = [&](const Expr& e, int k) {
    std::vector<long double> vals;
    vals.reserve(e.vars.size());
    for (auto& v : e.vars) vals.push_back(point_value(v, k));
    return vals;
  };
  if (names.empty()) {
    long double a = reward_detail::evaluate(*pe, {}), b = reward_detail::evaluate(*ge, {});
    return constants_equal(a, b);
  }
  int valid = 0;
  for (int k = 0; k < 6; ++k) {
    long double a = reward_detail::evaluate(*pe, values_for(*pe, k));
    long double b = reward_detail::evaluate(*ge, values_for(*ge, k));
    if (!std::isfinite(a) || !std::isfinite(b)) {
      if (std::isfinite(a) != std::isfinite(b)) return false;
      continue;
    }
    if (!close_enough(a, b, 1e-6L)) return false;
    ++valid;
  }
  return valid >= 3;
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::string normalize_answer(std::string_view answer) {
  if (answer.size() > kMaxAnswerChars) return std::string(answer);
  return normalize_impl(answer);
}

bool math_equal(std::string_view pred, std::string_view gold) {
  if (pred.size() > kMaxAnswerChars || gold.size() > kMaxAnswerChars) return false;
  std::string p = normalize_impl(pred), g = normalize_impl(gold);
  if (p.empty() || g.empty()) return false;
  if (p == g) return true;
  Context ctx;
  if (equal_norm(p, g, ctx, 0)) return true;
  // Plain words compare case-insensitively ("Monday" vs "monday").
  bool words = std::all_of(p.begin(), p.end(), [](char c) { return is_alpha(c) || c == ' '; }) &&
               std::all_of(g.begin(), g.end(), [](char c) { return is_alpha(c) || c == ' '; });
  return words && p.size() > 1 && lowercase(p) == lowercase(g);
}

}  // namespace mathrl
