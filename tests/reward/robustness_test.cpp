// 100000 random and malformed strings through grade(): no crash, bounded time per call.
#include <gtest/gtest.h>

#include <chrono>
#include <random>
#include <string>

#include "reward/grader.h"

namespace {

std::string random_text(std::mt19937_64& rng) {
  static const char* pieces[] = {"\\boxed{", "}", "{", "(", ")", "[", "]", "\\frac", "\\sqrt", "^", "_", "1",
                                 "2.5", "x", "=", ",", "\\{", "\\}", "\\left(", "\\right)", "\\text{", "%",
                                 "e", "-", "+", "*", "/", "\\pi", "\\begin{pmatrix}", "\\end{pmatrix}", "&",
                                 "\\\\", "####", "The answer is ", "\\cup", "\\infty", " ", "$", "10^{10^{10}}",
                                 "\\sin", "!", "\xE7\xAD\x94\xE6\xA1\x88\xE6\x98\xAF", "\xff", "|", "\\"};
  std::string s;
  switch (rng() % 4) {
    case 0: {  // random bytes
      size_t n = rng() % 64;
      for (size_t i = 0; i < n; ++i) s.push_back(static_cast<char>(rng() & 0xff));
      break;
    }
    case 1:  // deep nesting
      s = "\\boxed{" + std::string(rng() % 5000 + 1, "{([|"[rng() % 4]) + "1";
      break;
    default: {  // token soup
      size_t n = rng() % 40 + 1;
      for (size_t i = 0; i < n; ++i) s += pieces[rng() % (sizeof(pieces) / sizeof(pieces[0]))];
    }
  }
  return s;
}

}  // namespace

TEST(Robustness, RandomAndMalformedInputs) {
  std::mt19937_64 rng(12345);
  double max_seconds = 0;
  std::string worst;
  int equal = 0;
  for (int i = 0; i < 100000; ++i) {
    std::string a = random_text(rng), b = random_text(rng);
    auto t0 = std::chrono::steady_clock::now();
    auto r = mathrl::grade(a, b);
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    equal += r.equal;
    if (dt > max_seconds) {
      max_seconds = dt;
      worst = a.substr(0, 80) + " | " + b.substr(0, 80);
    }
  }
  // Fixed pathological cases.
  for (const std::string& s : {std::string(5000, '{'), std::string(5000, '('), "\\boxed{" + std::string(5000, '('),
                               std::string("10^{10^{10}}"), std::string("\\boxed{10^{10^{10^{10}}}}"),
                               std::string(1999, '1'), "(" + std::string(1990, '1') + ")!",
                               std::string("\\sqrt[0]{0}"), std::string("0^{-1}"), std::string("\\frac{1}{0}")}) {
    auto t0 = std::chrono::steady_clock::now();
    mathrl::grade(s, s + "1");
    mathrl::grade(s, s);
    mathrl::grade("\\boxed{" + s + "}", "1");
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (dt > max_seconds) {
      max_seconds = dt;
      worst = s.substr(0, 80);
    }
  }
  RecordProperty("max_seconds_per_call", std::to_string(max_seconds));
  std::printf("max wall time per grade(): %.6f s (%s); %d random pairs equal\n", max_seconds, worst.c_str(), equal);
  EXPECT_LT(max_seconds, 1.0) << worst;  // sanity bound, not a speed goal
}
