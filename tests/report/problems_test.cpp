// The Lua word-problem generator (recipes/lib/problems.lua), run through `mathrl run`: the same
// seed gives the same files, every worked step is correct arithmetic, each solution's \boxed{}
// answer is the record's answer, splits are disjoint, and the native grader (`mathrl grade`) agrees.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/jsonl.h"
#include "common/strings.h"
#include "support/test_support.h"

namespace mathrl {
namespace {

using Record = std::map<std::string, std::string>;

std::vector<Record> read_records(const std::string& path) {
  std::vector<Record> out;
  LineReader reader(path);
  std::string line;
  while (reader.next(line)) {
    auto doc = parse_json(line, path);
    Record r;
    for (const auto& m : doc.GetObject())
      r[m.name.GetString()] = m.value.IsString() ? m.value.GetString() : std::to_string(m.value.GetInt64());
    out.push_back(std::move(r));
  }
  return out;
}

std::string generate(const test::TempDir& dir, const std::string& name, int seed) {
  std::string out = dir.file(name);
  auto r = test::run_mathrl({"run", test::source_dir() + "/tests/report/problems_check.lua", "--out", out, "--set",
                             str("params.seed=", seed)});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return out;
}

// The content of the last \boxed{...}, braces balanced.
std::string last_boxed(const std::string& s) {
  size_t at = s.rfind("\\boxed{");
  if (at == std::string::npos) return "";
  size_t i = at + 7, depth = 1, start = i;
  for (; i < s.size() && depth > 0; ++i) depth += s[i] == '{' ? 1 : s[i] == '}' ? -1 : 0;
  return depth == 0 ? s.substr(start, i - start - 1) : "";
}

// Checks every "a op b = c" in the text; returns the last c (or -1 when there is none).
long long check_arithmetic(const std::string& text, const std::string& where) {
  static const std::regex calc(R"((\d+) ([-+*/]) (\d+) = \$?(\d+))");
  long long last = -1;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), calc); it != std::sregex_iterator(); ++it) {
    long long a = std::stoll((*it)[1]), b = std::stoll((*it)[3]), c = std::stoll((*it)[4]);
    char op = (*it)[2].str()[0];
    long long want = op == '+' ? a + b : op == '-' ? a - b : op == '*' ? a * b : (b != 0 && a % b == 0 ? a / b : -999);
    EXPECT_EQ(c, want) << where << ": " << (*it)[0];
    last = c;
  }
  return last;
}

class Problems : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir;
    a_ = generate(*dir_, "a", 5);
    b_ = generate(*dir_, "b", 5);
    c_ = generate(*dir_, "c", 6);
  }
  static void TearDownTestSuite() { delete dir_; }
  static test::TempDir* dir_;
  static std::string a_, b_, c_;
};
test::TempDir* Problems::dir_ = nullptr;
std::string Problems::a_, Problems::b_, Problems::c_;

TEST_F(Problems, SameSeedSameFilesOtherSeedOtherProblems) {
  for (const char* f : {"level1.jsonl", "level3.jsonl", "level5.jsonl", "train.jsonl", "heldout.jsonl", "gsm8k.jsonl"}) {
    EXPECT_EQ(read_file(a_ + "/" + f), read_file(b_ + "/" + f)) << f;
    EXPECT_NE(read_file(a_ + "/" + f), read_file(c_ + "/" + f)) << f;
  }
}

TEST_F(Problems, WorkedSolutionsAreCorrectAndEndInTheAnswer) {
  std::map<int, double> mean_steps;
  std::set<std::string> templates;
  for (int level = 1; level <= 5; ++level) {
    auto records = read_records(str(a_, "/level", level, ".jsonl"));
    ASSERT_EQ(records.size(), 40u);
    std::set<std::string> questions;
    for (size_t i = 0; i < records.size(); ++i) {
      const Record& r = records[i];
      std::string where = str("level ", level, " #", i);
      ASSERT_TRUE(r.count("question") && r.count("solution") && r.count("answer")) << where;
      EXPECT_TRUE(questions.insert(r.at("question")).second) << where << ": repeated question";
      const std::string& sol = r.at("solution");
      EXPECT_TRUE(ends_with(sol, "\\boxed{" + r.at("answer") + "}")) << where << ": " << sol;
      EXPECT_EQ(last_boxed(sol), r.at("answer")) << where;
      // The answer is the result of the last calculation, and every calculation is right.
      long long last = check_arithmetic(sol, where);
      EXPECT_EQ(std::to_string(last), r.at("answer")) << where << ": " << sol;
      int steps = std::stoi(r.at("steps"));
      EXPECT_GE(steps, 1);
      int calcs = 0;
      for (size_t p = sol.find(" = "); p != std::string::npos; p = sol.find(" = ", p + 1)) ++calcs;
      EXPECT_GE(calcs, steps) << where;
      mean_steps[level] += steps / 40.0;
      templates.insert(r.at("template"));
    }
  }
  EXPECT_LT(mean_steps[1], mean_steps[3]);
  EXPECT_LT(mean_steps[3], mean_steps[5]);
  EXPECT_GE(templates.size(), 5u);  // shopping, factory, sharing, travel, ages
}

TEST_F(Problems, SplitsAreDisjoint) {
  auto train = read_records(a_ + "/train.jsonl");
  auto held = read_records(a_ + "/heldout.jsonl");
  EXPECT_EQ(train.size(), 120u);
  EXPECT_EQ(held.size(), 40u);
  std::set<std::string> seen;
  for (const auto& r : train) seen.insert(r.at("question"));
  for (const auto& r : held) EXPECT_EQ(seen.count(r.at("question")), 0u) << r.at("question");
  // Unsplit, the stream holds both kinds in roughly the held-out share (20%).
  std::string metrics = read_file(a_ + "/metrics.jsonl");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(metrics, m, std::regex(R"("heldout":(\d+),"train":(\d+))")));
  int h = std::stoi(m[1]), t = std::stoi(m[2]);
  EXPECT_EQ(h + t, 160);
  EXPECT_GT(h, 10);
  EXPECT_LT(h, 60);
}

TEST_F(Problems, NativeGraderAgrees) {
  std::string input, wrong;
  int n = 0;
  for (const char* f : {"level2.jsonl", "level4.jsonl", "level5.jsonl"}) {
    for (const auto& r : read_records(a_ + "/" + f)) {
      std::string line = "{\"pred\":";
      append_json_string(line, r.at("solution"));
      line += ",\"gold\":";
      append_json_string(line, r.at("answer"));
      input += line + "}\n";
      std::string bad = "{\"pred\":";
      append_json_string(bad, r.at("solution"));
      bad += ",\"gold\":";
      append_json_string(bad, std::to_string(std::stoll(r.at("answer")) + 1));
      wrong += bad + "}\n";
      ++n;
    }
  }
  // GSM8K layout: the worked solution ending "#### N" grades against N too.
  for (const auto& r : read_records(a_ + "/gsm8k.jsonl")) {
    EXPECT_TRUE(ends_with(r.at("answer"), "\n#### " + r.at("final"))) << r.at("answer");
    std::string line = "{\"pred\":";
    append_json_string(line, r.at("answer"));
    line += ",\"gold\":";
    append_json_string(line, r.at("final"));
    input += line + "}\n";
    ++n;
  }
  auto ok = test::run_mathrl({"grade"}, input);
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  auto lines = split(std::string(trim(ok.out)), '\n');
  ASSERT_EQ(static_cast<int>(lines.size()), n);
  for (const auto& l : lines) EXPECT_NE(l.find("\"equal\": true"), std::string::npos) << l;
  auto bad = test::run_mathrl({"grade"}, wrong);
  ASSERT_EQ(bad.exit_code, 0) << bad.err;
  for (const auto& l : split(std::string(trim(bad.out)), '\n')) EXPECT_NE(l.find("\"equal\": false"), std::string::npos) << l;
}

}  // namespace
}  // namespace mathrl
