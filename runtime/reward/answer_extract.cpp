#include "reward/answer_extract.h"

#include <cctype>
#include <vector>

#include "common/strings.h"

namespace mathrl {
namespace {


// Content of the last \boxed / \fbox in text, or nullopt.
std::optional<std::string> last_boxed(std::string_view text) {
  size_t best = std::string_view::npos, best_len = 0;
  for (std::string_view key : {std::string_view("\\boxed"), std::string_view("\\fbox")}) {
    size_t p = text.rfind(key);
    // Skip matches that are a prefix of a longer command (\boxedx is not \boxed).
    while (p != std::string_view::npos) {
      size_t after = p + key.size();
      if (after >= text.size() || !std::isalpha(static_cast<unsigned char>(text[after]))) break;
      p = p == 0 ? std::string_view::npos : text.rfind(key, p - 1);
    }
    if (p != std::string_view::npos && (best == std::string_view::npos || p > best)) {
      best = p;
      best_len = key.size();
    }
  }
  if (best == std::string_view::npos) return std::nullopt;
  size_t i = best + best_len;
  while (i < text.size() && text[i] == ' ') ++i;
  if (i < text.size() && text[i] == '{') {
    int depth = 0;
    size_t start = i + 1;
    for (size_t j = i; j < text.size(); ++j) {
      char c = text[j];
      if (c == '\\' && j + 1 < text.size()) {  // \{ and \} do not count as grouping
        ++j;
        continue;
      }
      if (c == '{') ++depth;
      else if (c == '}' && --depth == 0) return std::string(trim(text.substr(start, j - start)));
    }
    return std::nullopt;  // unbalanced: no usable answer
  }
  // \boxed 5 : the token up to whitespace or '$'.
  size_t start = i;
  while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i])) && text[i] != '$') ++i;
  if (i == start) return std::nullopt;
  return std::string(text.substr(start, i - start));
}

bool ieq_at(std::string_view text, size_t pos, std::string_view key) {
  if (pos + key.size() > text.size()) return false;
  for (size_t k = 0; k < key.size(); ++k)
    if (std::tolower(static_cast<unsigned char>(text[pos + k])) != key[k]) return false;
  return true;
}

// The phrase after the last case-insensitive occurrence of any key, up to the end of the sentence.
std::optional<std::string> after_phrase(std::string_view text, const std::vector<std::string_view>& keys) {
  size_t best = std::string_view::npos, best_end = 0;
  for (size_t p = 0; p < text.size(); ++p)
    for (auto key : keys)
      if (ieq_at(text, p, key)) {
        best = p;
        best_end = p + key.size();
      }
  if (best == std::string_view::npos) return std::nullopt;
  std::string_view rest = text.substr(best_end);
  // Skip ':' / '：' / spaces.
  while (true) {
    rest = trim(rest);
    if (!rest.empty() && rest.front() == ':') rest.remove_prefix(1);
    else if (rest.substr(0, 3) == "\xEF\xBC\x9A") rest.remove_prefix(3);  // full-width colon
    else if (rest.substr(0, 3) == "\xE6\x98\xAF" || rest.substr(0, 3) == "\xE4\xB8\xBA") rest.remove_prefix(3);  // 是 为
    else break;
  }
  // Up to the end of the line, a Chinese full stop, or a '.' that ends the sentence (not a decimal point).
  size_t end = rest.size();
  for (size_t i = 0; i < rest.size(); ++i) {
    if (rest[i] == '\n') { end = i; break; }
    if (rest.substr(i, 3) == "\xE3\x80\x82") { end = i; break; }
    if (rest[i] == '.' && (i + 1 == rest.size() || std::isspace(static_cast<unsigned char>(rest[i + 1])))) {
      end = i;
      break;
    }
  }
  std::string_view ans = trim(rest.substr(0, end));
  // A boxed answer inside the phrase wins.
  if (auto b = last_boxed(ans)) return b;
  // Strip surrounding $...$ or \( \).
  while (ans.size() >= 2 && ans.front() == '$' && ans.back() == '$') ans = trim(ans.substr(1, ans.size() - 2));
  if (ans.size() >= 4 && ans.substr(0, 2) == "\\(" && ans.substr(ans.size() - 2) == "\\)")
    ans = trim(ans.substr(2, ans.size() - 4));
  if (ans.empty()) return std::nullopt;
  return std::string(ans);
}

std::optional<std::string> after_hashes(std::string_view text) {
  size_t p = text.rfind("####");
  if (p == std::string_view::npos) return std::nullopt;
  std::string_view rest = text.substr(p + 4);
  size_t nl = rest.find('\n');
  if (nl != std::string_view::npos) rest = rest.substr(0, nl);
  rest = trim(rest);
  if (rest.empty()) return std::nullopt;
  return std::string(rest);
}

std::optional<std::string> last_number(std::string_view text) {
  // Scan backwards for the last digit, then widen to the whole number (sign, commas, decimals, a/b).
  size_t i = text.size();
  while (i > 0 && !std::isdigit(static_cast<unsigned char>(text[i - 1]))) --i;
  if (i == 0) return std::nullopt;
  size_t end = i, start = i;
  auto numchar = [&](size_t k) {
    char c = text[k];
    if (std::isdigit(static_cast<unsigned char>(c))) return true;
    // '.', ',' and '/' only between digits.
    if ((c == '.' || c == ',' || c == '/') && k > 0 && k + 1 < text.size() &&
        std::isdigit(static_cast<unsigned char>(text[k - 1])) && std::isdigit(static_cast<unsigned char>(text[k + 1])))
      return true;
    return false;
  };
  while (start > 0 && numchar(start - 1)) --start;
  if (start > 0 && text[start - 1] == '-') --start;
  std::string out(text.substr(start, end - start));
  // "1,2,3" lists are not one number: keep only the last element unless commas are thousands groups.
  size_t comma = out.rfind(',');
  if (comma != std::string::npos) {
    bool groups = true;
    size_t prev = out.find_first_of(",.");
    // every comma-separated group after the first must be exactly three digits
    size_t pos = 0;
    std::vector<std::string> parts;
    std::string cur;
    for (char c : out) {
      if (c == ',') { parts.push_back(cur); cur.clear(); } else cur.push_back(c);
    }
    parts.push_back(cur);
    for (size_t k = 1; k < parts.size(); ++k) {
      std::string_view part = parts[k];
      size_t digits = 0;
      while (digits < part.size() && std::isdigit(static_cast<unsigned char>(part[digits]))) ++digits;
      if (digits != 3 || (k + 1 < parts.size() && part.size() != 3)) groups = false;
    }
    (void)prev;
    (void)pos;
    if (!groups) out = parts.back();
  }
  return out;
}

}  // namespace

bool has_answer_marker(std::string_view text) {
  return text.find("\\boxed") != std::string_view::npos || text.find("\\fbox") != std::string_view::npos ||
         text.find("####") != std::string_view::npos;
}

std::optional<std::string> extract_answer(std::string_view text, const ExtractOptions& options) {
  if (auto b = last_boxed(text)) return b;
  if (auto a = after_phrase(text, {"the answer is", "the final answer is", "final answer:"})) return a;
  if (auto h = after_hashes(text)) return h;
  // 最终答案 / 故答案为 / 答案是 / 答案为
  if (auto z = after_phrase(text, {"\xE6\x9C\x80\xE7\xBB\x88\xE7\xAD\x94\xE6\xA1\x88",
                                   "\xE6\x95\x85\xE7\xAD\x94\xE6\xA1\x88\xE4\xB8\xBA",
                                   "\xE7\xAD\x94\xE6\xA1\x88\xE6\x98\xAF", "\xE7\xAD\x94\xE6\xA1\x88\xE4\xB8\xBA"}))
    return z;
  if (options.last_number_fallback) return last_number(text);
  return std::nullopt;
}

}  // namespace mathrl
