// Real data: every MATH500 answer equals its own \boxed solution; GSM8K "#### N" answers extract.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "common/jsonl.h"
#include "reward/grader.h"
#include "support/test_support.h"

namespace {

std::string shared_file(const std::string& rel) { return mathrl::test::shared_dir() + "/" + rel; }

bool exists(const std::string& path) { return std::ifstream(path).good(); }

}  // namespace

TEST(GraderData, Math500AnswersMatchTheirSolutions) {
  std::string path = shared_file("data/math500/test.jsonl");
  if (!exists(path)) GTEST_SKIP() << "no " << path;
  mathrl::LineReader reader(path);
  std::string line;
  int n = 0, failures = 0;
  while (reader.next(line)) {
    auto doc = mathrl::parse_json(line, path);
    std::string answer = doc["answer"].GetString(), solution = doc["solution"].GetString();
    ++n;
    auto r = mathrl::grade(solution, answer);
    if (!r.equal) {
      ++failures;
      ADD_FAILURE() << "line " << reader.line_number() << ": answer '" << answer << "' vs extracted '"
                    << r.pred_answer.value_or("<none>") << "'";
    }
    // The solution as the gold side too (gold may be a full solution).
    EXPECT_TRUE(mathrl::grade(answer, solution).equal) << "line " << reader.line_number();
  }
  EXPECT_EQ(n, 500);
  EXPECT_EQ(failures, 0);
}

TEST(GraderData, Math500AnswersDifferFromTheNextProblems) {
  // Near misses on real answers: an answer should not equal an unrelated problem's answer (a few
  // coincide, e.g. two problems whose answer is 2; allow those).
  std::string path = shared_file("data/math500/test.jsonl");
  if (!exists(path)) GTEST_SKIP() << "no " << path;
  mathrl::LineReader reader(path);
  std::string line;
  std::vector<std::string> answers;
  while (reader.next(line)) answers.push_back(mathrl::parse_json(line, path)["answer"].GetString());
  int same = 0;
  for (size_t i = 0; i + 1 < answers.size(); ++i)
    if (mathrl::math_equal(answers[i], answers[i + 1]) && answers[i] != answers[i + 1]) ++same;
  EXPECT_LE(same, 3);
}

TEST(GraderData, Gsm8kHashAnswersExtract) {
  std::string path = shared_file("data/gsm8k/test.jsonl");
  if (!exists(path)) GTEST_SKIP() << "no " << path;
  mathrl::LineReader reader(path);
  std::string line;
  int n = 0;
  while (reader.next(line)) {
    auto doc = mathrl::parse_json(line, path);
    std::string answer = doc["answer"].GetString();
    size_t p = answer.rfind("#### ");
    ASSERT_NE(p, std::string::npos);
    std::string expected = answer.substr(p + 5);
    auto got = mathrl::extract_answer(answer);
    ASSERT_TRUE(got.has_value()) << "line " << reader.line_number();
    EXPECT_EQ(*got, expected) << "line " << reader.line_number();
    // The number alone, as a model would write it in a sentence, grades equal; one more does not.
    std::string plain = expected;
    plain.erase(std::remove(plain.begin(), plain.end(), ','), plain.end());
    EXPECT_TRUE(mathrl::grade("So the total is " + plain + ".", answer).equal) << "line " << reader.line_number();
    EXPECT_TRUE(mathrl::grade("The answer is $\\boxed{" + expected + "}$", answer).equal);
    EXPECT_FALSE(mathrl::grade("The answer is " + plain + "1.", answer).equal) << "line " << reader.line_number();
    ++n;
  }
  EXPECT_EQ(n, 1319);
}

TEST(Grader, GoldAsAnswerOrSolution) {
  auto r = mathrl::grade("so \\boxed{\\frac{1}{2}}", "0.5");
  EXPECT_TRUE(r.equal);
  EXPECT_EQ(r.pred_answer.value(), "\\frac{1}{2}");
  EXPECT_EQ(r.gold_answer.value(), "0.5");
  r = mathrl::grade("The answer is 18.", "She makes $18.\n#### 18");
  EXPECT_TRUE(r.equal);
  EXPECT_EQ(r.gold_answer.value(), "18");
  r = mathrl::grade("no answer at all", "5");
  EXPECT_FALSE(r.equal);
  EXPECT_FALSE(r.pred_answer.has_value());
  mathrl::ExtractOptions strict;
  strict.last_number_fallback = false;
  EXPECT_FALSE(mathrl::grade("it is 5", "5", strict).equal);
  EXPECT_TRUE(mathrl::grade("it is 5", "5").equal);
}
