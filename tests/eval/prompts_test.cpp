#include <gtest/gtest.h>

#include "eval/prompts.h"
#include "support/test_support.h"

using namespace mathrl::eval;

TEST(Prompts, Gsm8kEightShotFromTrain) {
  std::string data = mathrl::test::shared_dir() + "/data";
  auto shots = default_exemplars("gsm8k", data);
  ASSERT_EQ(shots.size(), 8u);
  auto test = load_benchmark("gsm8k", data);
  for (const auto& s : shots)
    for (const auto& t : test) ASSERT_NE(s.question, t.question) << "a test problem leaked into the exemplars";
  std::string prompt = build_prompt("gsm8k", test[0], PromptStyle::FewShot, shots);
  EXPECT_EQ(prompt.find("<<"), std::string::npos) << "calculator annotations must be stripped";
  EXPECT_NE(prompt.find("Question: " + shots[0].question + "\nAnswer: "), std::string::npos);
  EXPECT_NE(prompt.find(" The answer is " + shots[0].gold + ".\n\n"), std::string::npos);
  EXPECT_TRUE(prompt.size() > test[0].question.size() &&
              prompt.substr(prompt.size() - test[0].question.size() - 8) == test[0].question + "\nAnswer:");
}

TEST(Prompts, MathFourShotMinervaFormat) {
  std::string data = mathrl::test::shared_dir() + "/data";
  auto shots = default_exemplars("math500", data);
  ASSERT_EQ(shots.size(), 4u);
  for (size_t i = 0; i < shots.size(); ++i)
    for (size_t j = i + 1; j < shots.size(); ++j) EXPECT_NE(shots[i].subject, shots[j].subject);
  auto problem = load_benchmark("math500", data)[0];
  std::string prompt = build_prompt("math500", problem, PromptStyle::FewShot, shots);
  EXPECT_NE(prompt.find("Final Answer: The final answer is $" + shots[3].gold + "$. I hope it is correct.\n\n"), std::string::npos);
  EXPECT_TRUE(prompt.size() > 12 && prompt.substr(prompt.size() - 12) == "\n\nSolution:\n");
}

TEST(Prompts, ZeroShotInstruct) {
  Problem p;
  p.question = "What is 1+1?";
  EXPECT_EQ(build_prompt("gsm8k", p, PromptStyle::ZeroShot),
            "What is 1+1?\nPlease reason step by step, and put your final answer within \\boxed{}.");
  EXPECT_EQ(strip_calculator_annotations("48/2 = <<48/2=24>>24"), "48/2 = 24");
  EXPECT_EQ(strip_calculator_annotations("a << b"), "a << b");
}
