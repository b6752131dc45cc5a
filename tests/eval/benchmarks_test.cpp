#include <gtest/gtest.h>

#include <map>

#include "common/error.h"
#include "eval/benchmarks.h"
#include "support/test_support.h"

using namespace mathrl;
using namespace mathrl::eval;

TEST(Benchmarks, EverySharedSetLoadsWithGoldAnswers) {
  const std::map<std::string, size_t> sizes = {
      {"gsm8k", 1319}, {"math", 5000}, {"math500", 500}, {"svamp", 1000}, {"asdiv", 2215}, {"mawps", 2065},
      {"minerva_math", 272}, {"ocw", 272}, {"cmath", 1098}, {"mgsm_zh", 250}, {"sat", 32}, {"mmlu_stem", 3018},
      {"gaokao_cloze", 118}, {"gaokao_qa", 351}};
  ASSERT_EQ(benchmark_names().size(), sizes.size());
  for (const auto& [name, size] : sizes) {
    auto problems = load_benchmark(name, test::shared_dir() + "/data");
    EXPECT_EQ(problems.size(), size) << name;
    for (const auto& p : problems) {
      ASSERT_FALSE(p.question.empty()) << name << " " << p.id;
      ASSERT_FALSE(p.gold.empty()) << name << " " << p.id;
    }
  }
}

TEST(Benchmarks, AdaptersReadTheRightFields) {
  std::string data = test::shared_dir() + "/data";
  auto gsm = load_benchmark("gsm8k", data);
  EXPECT_EQ(gsm[0].gold, "18");
  EXPECT_NE(gsm[0].question.find("Janet"), std::string::npos);
  auto math = load_benchmark("math", data);
  EXPECT_EQ(math[0].gold, "2");
  EXPECT_EQ(math[0].level, "Level 3");
  EXPECT_EQ(math[0].subject, "Algebra");
  auto m500 = load_benchmark("math500", data);
  EXPECT_EQ(m500[0].gold, "\\left( 3, \\frac{\\pi}{2} \\right)");
  EXPECT_EQ(m500[0].level, "Level 2");
  auto svamp = load_benchmark("svamp", data);
  EXPECT_EQ(svamp[0].gold, "145");
  EXPECT_NE(svamp[0].question.find("93 groups. How big"), std::string::npos) << svamp[0].question;
  EXPECT_EQ(load_benchmark("asdiv", data)[0].gold, "9");
  auto mmlu = load_benchmark("mmlu_stem", data);
  EXPECT_TRUE(mmlu[0].multiple_choice);
  EXPECT_EQ(mmlu[0].gold, "B");
  EXPECT_NE(mmlu[0].question.find("(B) 4"), std::string::npos);
  EXPECT_EQ(load_benchmark("cmath", data)[0].language, "zh");
  EXPECT_EQ(load_benchmark("mgsm_zh", data)[0].gold, "18");
  // MATH gold answers equal MATH500's answer field where the problems coincide.
  std::map<std::string, std::string> by_problem;
  for (const auto& p : math) by_problem[p.question] = p.gold;
  int compared = 0;
  for (const auto& p : m500) {
    auto it = by_problem.find(p.question);
    if (it == by_problem.end()) continue;
    EXPECT_EQ(it->second, p.gold) << p.question;
    ++compared;
  }
  EXPECT_EQ(compared, 500);
}

TEST(Benchmarks, ErrorsNameTheProblem) {
  test::TempDir dir;
  EXPECT_THROW(load_benchmark("gsm8", test::shared_dir() + "/data"), UsageError);
  try {
    load_benchmark("gsm8", "x");
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("did you mean 'gsm8k'?"), std::string::npos);
  }
  std::string bad = dir.file("bad.jsonl");
  FILE* f = std::fopen(bad.c_str(), "w");
  std::fputs("{\"question\": \"q\", \"answer\": \"no marker\"}\n", f);
  std::fclose(f);
  try {
    load_benchmark("gsm8k", "", bad);
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:1: GSM8K answer has no '#### N' line"), std::string::npos) << e.what();
  }
}

TEST(Benchmarks, LastBoxedHandlesNestingAndForms) {
  EXPECT_EQ(last_boxed("so \\boxed{\\frac{1}{2}} and then \\boxed{3}"), "3");
  EXPECT_EQ(last_boxed("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}"), "\\left( 3, \\frac{\\pi}{2} \\right)");
  EXPECT_EQ(last_boxed("the answer is $\\boxed 5$."), "5");
  EXPECT_EQ(last_boxed("\\boxed{1} then \\fbox{2}"), "2");
  EXPECT_EQ(last_boxed("\\boxed{unbalanced"), "");
  EXPECT_EQ(last_boxed("no box"), "");
  EXPECT_EQ(format_number(145.0), "145");
  EXPECT_EQ(format_number(0.5), "0.5");
  EXPECT_EQ(format_number(-3.25), "-3.25");
}
