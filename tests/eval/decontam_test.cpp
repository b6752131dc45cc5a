#include <gtest/gtest.h>

#include <fstream>

#include "eval/decontam.h"
#include "support/test_support.h"

using namespace mathrl;
using namespace mathrl::eval;

TEST(Decontam, NormalizesWordsAndSplitsCjk) {
  auto w = normalized_words("Janet's ducks: $48/2$ = 24!  中文题");
  std::vector<std::string> expected = {"janet", "s", "ducks", "48", "2", "24", "中", "文", "题"};
  EXPECT_EQ(w, expected);
}

TEST(Decontam, TenGramOverlapAndShortExactMatch) {
  NgramIndex index(10);
  index.add("Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning.", "gsm8k");
  index.add("What is 2+2?", "tiny");
  EXPECT_EQ(index.match("Reworded: JANET'S ducks lay 16 eggs per day; she eats three for lunch."), "gsm8k");
  EXPECT_EQ(index.match("Janet's ducks lay 16 eggs per week. She eats three for breakfast."), "");  // 9 words in a row at most
  EXPECT_EQ(index.match("Quiz: what is 2 + 2 ? Four."), "tiny");
  EXPECT_EQ(index.match("what is 2 plus 2"), "");
}

TEST(Decontam, CliRemovesGsm8kTestProblemsFromTrainingText) {
  test::TempDir dir;
  std::string input;
  input += "{\"text\": \"Janet\\u2019s ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for her friends every day with four.\"}\n";
  input += "{\"text\": \"A completely different story about seven cats and a very long river that nobody has ever seen.\"}\n";
  auto r = test::run_mathrl({"decontam", "--bench", "gsm8k", "--data-dir", test::shared_dir() + "/data", "--removed",
                             dir.file("removed.jsonl")},
                            input);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find("Janet"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("seven cats"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("kept 1, removed 1 (gsm8k: 1)"), std::string::npos) << r.err;
  std::ifstream removed(dir.file("removed.jsonl"));
  std::string line;
  std::getline(removed, line);
  EXPECT_EQ(line, "{\"line\":1,\"benchmark\":\"gsm8k\"}");
}
