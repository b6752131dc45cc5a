#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <iterator>
#include <random>

#include "support/test_support.h"

using mathrl::test::run_mathrl;

TEST(GradeCli, GradesLinesInOrderAndReportsBadOnes) {
  std::string input =
      "{\"pred\": \"so \\\\boxed{\\\\frac{1}{2}}\", \"gold\": \"0.5\"}\n"
      "{\"pred\": \"I get 7\", \"gold\": 8}\n"
      "not json\n"
      "{\"pred\": \"x\"}\n"
      "{\"pred\": 3, \"gold\": \"3\"}\n"
      "{\"pred\": [3], \"gold\": \"3\"}\n"
      "{\"pred\": \"The answer is 18.\", \"gold\": \"blah\\n#### 18\"}\n"
      "{\"pred\": \"nothing\", \"gold\": \"1\"}\n";
  auto r = run_mathrl({"grade"}, input);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> lines;
  size_t start = 0, nl;
  while ((nl = r.out.find('\n', start)) != std::string::npos) {
    lines.push_back(r.out.substr(start, nl - start));
    start = nl + 1;
  }
  ASSERT_EQ(lines.size(), 8u) << r.out;
  EXPECT_EQ(lines[0], "{\"equal\": true, \"pred_answer\": \"\\\\frac{1}{2}\", \"gold_answer\": \"0.5\"}");
  EXPECT_EQ(lines[1], "{\"equal\": false, \"pred_answer\": \"7\", \"gold_answer\": \"8\"}");
  EXPECT_NE(lines[2].find("\"error\""), std::string::npos);
  EXPECT_NE(lines[2].find("\"equal\": false, \"pred_answer\": null, \"gold_answer\": null"), std::string::npos);
  EXPECT_NE(lines[3].find("missing field 'gold'"), std::string::npos) << lines[3];
  // Numbers are accepted on either side (GSM8K golds are often JSON numbers); other types are errors.
  EXPECT_EQ(lines[4], "{\"equal\": true, \"pred_answer\": \"3\", \"gold_answer\": \"3\"}");
  EXPECT_NE(lines[5].find("field 'pred' must be a string or a number"), std::string::npos) << lines[5];
  EXPECT_EQ(lines[6], "{\"equal\": true, \"pred_answer\": \"18\", \"gold_answer\": \"18\"}");
  EXPECT_EQ(lines[7], "{\"equal\": false, \"pred_answer\": null, \"gold_answer\": \"1\"}");

  auto strict = run_mathrl({"grade", "--no-fallback"}, "{\"pred\": \"I get 8\", \"gold\": \"8\"}\n");
  ASSERT_EQ(strict.exit_code, 0) << strict.err;
  EXPECT_EQ(strict.out, "{\"equal\": false, \"pred_answer\": null, \"gold_answer\": \"8\"}\n");
}

TEST(GradeCli, ReadsAFileAndRejectsAMissingOne) {
  mathrl::test::TempDir dir;
  std::string path = dir.file("in.jsonl");
  FILE* f = std::fopen(path.c_str(), "w");
  std::fputs("{\"pred\": \"\\\\boxed{(1,2)}\", \"gold\": \"(2,1)\"}\n", f);
  std::fclose(f);
  auto r = run_mathrl({"grade", path});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "{\"equal\": false, \"pred_answer\": \"(1,2)\", \"gold_answer\": \"(2,1)\"}\n");
  auto missing = run_mathrl({"grade", dir.file("nope.jsonl")});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("nope.jsonl"), std::string::npos);
}

// 100k random and malformed lines through the binary: one output line per input line, no crash,
// and the whole run bounded in time (work per pair is capped inside the grader).
TEST(GradeCli, HundredThousandRandomAndMalformedLines) {
  std::mt19937_64 rng(7);
  static const char* pieces[] = {"\\\\boxed{", "}", "{", "(", ")", "\\\\frac", "\\\\sqrt", "^", "1", "2.5", "x",
                                 "=", ",", "\\\\{", "\\\\}", "\\\\left(", "%", "-", "+", "/", "\\\\pi", "####",
                                 "The answer is ", "\\\\infty", " ", "$", "10^{10^{10}}", "!", "|", "\\\\\\\\",
                                 "\\u00e7\\u00ad", "\\ud800", "\\\"", "\\n"};
  std::string input;
  const int lines = 100000;
  for (int i = 0; i < lines; ++i) {
    switch (rng() % 8) {
      case 0: {  // raw bytes (not JSON, maybe not UTF-8; no newline inside)
        size_t n = rng() % 40;
        for (size_t j = 0; j < n; ++j) {
          char c = static_cast<char>(rng() & 0xff);
          input.push_back(c == '\n' ? ' ' : c);
        }
        break;
      }
      case 1:
        input += "{\"pred\": [1, 2], \"gold\": {\"a\": null}}";
        break;
      case 2:
        input += "{\"pred\": \"\\\\boxed{" + std::string(rng() % 3000 + 1, '{') + "\", \"gold\": \"1\"}";
        break;
      default: {
        std::string a, b;
        for (size_t j = 0, n = rng() % 30 + 1; j < n; ++j) a += pieces[rng() % std::size(pieces)];
        for (size_t j = 0, n = rng() % 10 + 1; j < n; ++j) b += pieces[rng() % std::size(pieces)];
        input += "{\"pred\": \"" + a + "\", \"gold\": \"" + b + "\"}";
      }
    }
    input += '\n';
  }
  auto t0 = std::chrono::steady_clock::now();
  auto r = run_mathrl({"grade"}, input);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(r.exit_code, 0) << r.err.substr(0, 2000);
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), lines);
  std::printf("mathrl grade: %d random/malformed lines in %.2f s\n", lines, seconds);
  EXPECT_LT(seconds, 120.0);  // a bound against hangs, not a speed goal (scripts/bench_grade.sh)
}
