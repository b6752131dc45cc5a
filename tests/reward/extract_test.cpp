#include <gtest/gtest.h>

#include "reward/answer_extract.h"

using mathrl::extract_answer;
using mathrl::ExtractOptions;

TEST(Extract, LastBoxedWithNestedBraces) {
  EXPECT_EQ(extract_answer("first \\boxed{1} then \\boxed{\\frac{1}{2}}.").value(), "\\frac{1}{2}");
  EXPECT_EQ(extract_answer("so $\\boxed{\\{1, \\{2\\}\\}}$").value(), "\\{1, \\{2\\}\\}");
  EXPECT_EQ(extract_answer("$\\boxed{x^{2^{3}}}$ done").value(), "x^{2^{3}}");
}

TEST(Extract, BoxedWithoutBracesAndFbox) {
  EXPECT_EQ(extract_answer("The result is $\\boxed 5$.").value(), "5");
  EXPECT_EQ(extract_answer("hence \\fbox{42}").value(), "42");
  EXPECT_EQ(extract_answer("\\boxed{7} and later \\fbox{8}").value(), "8");
}

TEST(Extract, UnbalancedBoxedFallsThrough) {
  ExtractOptions strict;
  strict.last_number_fallback = false;
  EXPECT_FALSE(extract_answer("\\boxed{1 + (2", strict).has_value());
}

TEST(Extract, AnswerPhrases) {
  EXPECT_EQ(extract_answer("We compute. The answer is 3.5.").value(), "3.5");
  EXPECT_EQ(extract_answer("so the final answer is $\\frac{3}{4}$.\nThanks").value(), "\\frac{3}{4}");
  EXPECT_EQ(extract_answer("Therefore, the answer is: (B)").value(), "(B)");
}

TEST(Extract, Gsm8kHashes) {
  EXPECT_EQ(extract_answer("She makes 9 * 2 = $18.\n#### 18").value(), "18");
  EXPECT_EQ(extract_answer("total\n#### 1,000\n").value(), "1,000");
}

TEST(Extract, ChinesePhrases) {
  EXPECT_EQ(extract_answer("\xE6\x89\x80\xE4\xBB\xA5\xE7\xAD\x94\xE6\xA1\x88\xE6\x98\xAF 12\xE3\x80\x82").value(), "12");
  EXPECT_EQ(extract_answer("\xE6\x95\x85\xE7\xAD\x94\xE6\xA1\x88\xE4\xB8\xBA\xEF\xBC\x9A""5").value(), "5");
  EXPECT_EQ(extract_answer("\xE6\x9C\x80\xE7\xBB\x88\xE7\xAD\x94\xE6\xA1\x88: 3/4").value(), "3/4");
  EXPECT_EQ(extract_answer("\xE7\xAD\x94\xE6\xA1\x88\xE4\xB8\xBA 8").value(), "8");
}

TEST(Extract, LastNumberFallback) {
  EXPECT_EQ(extract_answer("I think it is 12 apples, maybe 13.").value(), "13");
  EXPECT_EQ(extract_answer("costs -4.5 dollars").value(), "-4.5");
  EXPECT_EQ(extract_answer("a total of 1,234 people").value(), "1,234");
  EXPECT_EQ(extract_answer("the list 1,2,3").value(), "3");
  ExtractOptions strict;
  strict.last_number_fallback = false;
  EXPECT_FALSE(extract_answer("I think it is 12", strict).has_value());
  EXPECT_FALSE(extract_answer("no digits here").has_value());
  EXPECT_FALSE(extract_answer("").has_value());
}
