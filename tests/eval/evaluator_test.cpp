// The evaluation loop with a scripted answer source (tests only): problem i gets c_i correct
// completions out of K, so every metric has a closed form to compare with.
#include <gtest/gtest.h>

#include <fstream>

#include "common/error.h"
#include "eval/benchmarks.h"
#include "eval/evaluator.h"
#include "support/test_support.h"

using namespace mathrl;
using namespace mathrl::eval;

namespace {

constexpr int kSamples = 4;

// Correct answers come first for problem i: c_i = i % 5 of them (capped at K); wrong ones vote for
// two different wrong answers so maj@k has a real majority to find.
struct Scripted {
  std::vector<Problem> problems;
  int calls = 0;
  int fail_after_calls = -1;
  std::vector<std::vector<std::string>> operator()(const std::vector<std::string>& prompts, int n) {
    if (fail_after_calls >= 0 && calls >= fail_after_calls) throw std::runtime_error("interrupted");
    ++calls;
    std::vector<std::vector<std::string>> out;
    for (const auto& prompt : prompts) {
      size_t i = 0;
      while (i < problems.size() && prompt.find(problems[i].question) == std::string::npos) ++i;
      EXPECT_LT(i, problems.size()) << "prompt for an unknown problem";
      int c = std::min<int>(static_cast<int>(i % 5), n);
      std::vector<std::string> texts;
      for (int j = 0; j < n; ++j)
        texts.push_back(j < c ? "so \\boxed{" + problems[i].gold + "}" : j % 2 ? "\\boxed{-1}" : "no answer here");
      out.push_back(texts);
    }
    return out;
  }
};

AnswerChecker checker() {
  return {[](const std::string& text) -> std::optional<std::string> {
            std::string b = last_boxed(text);
            if (b.empty()) return std::nullopt;
            return b;
          },
          [](const std::string& a, const std::string& b) { return a == b; }};
}

}  // namespace

TEST(Evaluator, MetricsMatchTheScriptedAnswers) {
  Scripted script;
  script.problems = load_benchmark("gsm8k", test::shared_dir() + "/data");
  script.problems.resize(20);
  EvalOptions opt;
  opt.benchmark = "gsm8k";
  opt.data_dir = test::shared_dir() + "/data";
  opt.samples = kSamples;
  opt.limit = 20;
  opt.batch_problems = 6;
  EvalSummary s = run_eval(opt, std::ref(script), checker());
  EXPECT_EQ(s.overall.problems, 20);
  EXPECT_EQ(script.calls, 4);  // 20 problems in batches of 6
  double acc = 0, pass2 = 0, maj4 = 0;
  for (int i = 0; i < 20; ++i) {
    int c = std::min(i % 5, kSamples);
    acc += c / 4.0;
    pass2 += pass_at_k(4, c, 2);
    // Votes among 4: c correct, the rest split between "-1" (odd j) and no answer (even j).
    int wrong_votes = 0;
    for (int j = c; j < 4; ++j) wrong_votes += j % 2;
    maj4 += c > wrong_votes ? 1.0 : c == wrong_votes && c > 0 ? 0.5 : 0.0;
  }
  EXPECT_NEAR(s.overall.accuracy.mean, acc / 20, 1e-12);
  EXPECT_NEAR(s.overall.pass_at.at(2).mean, pass2 / 20, 1e-12);
  EXPECT_NEAR(s.overall.maj_at.at(4).mean, maj4 / 20, 1e-12);
  EXPECT_EQ(s.overall.pass_at.count(1) + s.overall.pass_at.count(2) + s.overall.pass_at.count(4), 3u);
  EXPECT_LE(s.overall.accuracy.low, s.overall.accuracy.mean);
  std::string md = summary_markdown({s});
  EXPECT_NE(md.find("| gsm8k | 20 | 4 |"), std::string::npos) << md;
}

TEST(Evaluator, InterruptedRunResumesWhereItStopped) {
  test::TempDir dir;
  EvalOptions opt;
  opt.benchmark = "math500";
  opt.data_dir = test::shared_dir() + "/data";
  opt.samples = 2;
  opt.limit = 30;
  opt.batch_problems = 8;
  opt.out_dir = dir.path();
  Scripted script;
  script.problems = load_benchmark("math500", opt.data_dir);
  script.problems.resize(30);
  script.fail_after_calls = 2;  // dies during the third batch
  EXPECT_THROW(run_eval(opt, std::ref(script), checker()), std::runtime_error);
  // Simulate a line cut in half by the kill.
  { std::ofstream(dir.file("math500.generations.jsonl"), std::ios::app) << "{\"problem\": 29, \"sam"; }
  Scripted rest;
  rest.problems = script.problems;
  EvalSummary resumed = run_eval(opt, std::ref(rest), checker());
  EXPECT_EQ(resumed.resumed_problems, 16);
  EXPECT_EQ(rest.calls, 2);  // only the 14 remaining problems, in batches of 8

  test::TempDir fresh_dir;
  opt.out_dir = fresh_dir.path();
  Scripted fresh;
  fresh.problems = script.problems;
  EvalSummary full = run_eval(opt, std::ref(fresh), checker());
  EXPECT_DOUBLE_EQ(resumed.overall.accuracy.mean, full.overall.accuracy.mean);
  EXPECT_DOUBLE_EQ(resumed.overall.maj_at.at(2).mean, full.overall.maj_at.at(2).mean);
  EXPECT_EQ(summary_json(resumed).substr(0, 40), summary_json(full).substr(0, 40));
  EXPECT_FALSE(full.by_level.empty());
  EXPECT_FALSE(full.by_subject.empty());
}

TEST(Evaluator, RejectsBadOptions) {
  EvalOptions opt;
  opt.benchmark = "gsm8k";
  opt.data_dir = test::shared_dir() + "/data";
  opt.samples = 4;
  opt.ks = {8};
  Scripted script;
  EXPECT_THROW(run_eval(opt, std::ref(script), checker()), UsageError);
  opt.samples = 0;
  EXPECT_THROW(run_eval(opt, std::ref(script), checker()), UsageError);
}

// The streaming generator: problems reach the file as they finish, in any order, so a run killed
// mid-call keeps them; the resumed run is asked only for the rest, by their benchmark indices.
TEST(Evaluator, StreamingGeneratorKeepsFinishedProblemsOfAKilledCall) {
  test::TempDir dir;
  EvalOptions opt;
  opt.benchmark = "gsm8k";
  opt.data_dir = test::shared_dir() + "/data";
  opt.samples = 2;
  opt.limit = 10;
  opt.batch_problems = 0;  // all in one call
  opt.out_dir = dir.path();
  Scripted script;
  script.problems = load_benchmark("gsm8k", opt.data_dir);
  script.problems.resize(10);
  size_t started = 0;
  opt.on_start = [&](size_t todo, size_t total) {
    started = todo;
    EXPECT_EQ(total, 10u);
  };
  // Finishes problems 9, 7, 5 (last first), then dies.
  IndexedGenerateFn dies = [&](const std::vector<std::string>& prompts, const std::vector<size_t>& problems, int n,
                               const PromptDone& done) {
    EXPECT_EQ(prompts.size(), 10u);
    auto texts = script(prompts, n);
    for (size_t t : {9u, 7u, 5u}) {
      EXPECT_EQ(problems[t], t);
      done(t, texts[t]);
    }
    throw std::runtime_error("killed");
  };
  EXPECT_THROW(run_eval(opt, dies, checker()), std::runtime_error);
  EXPECT_EQ(started, 10u);
  std::vector<size_t> asked;
  IndexedGenerateFn rest = [&](const std::vector<std::string>& prompts, const std::vector<size_t>& problems, int n,
                               const PromptDone& done) {
    asked = problems;
    auto texts = script(prompts, n);
    for (size_t t = prompts.size(); t-- > 0;) done(t, texts[t]);
  };
  EvalSummary resumed = run_eval(opt, rest, checker());
  EXPECT_EQ(started, 7u);
  EXPECT_EQ(resumed.resumed_problems, 3);
  EXPECT_EQ(asked, (std::vector<size_t>{0, 1, 2, 3, 4, 6, 8}));
  test::TempDir fresh_dir;
  opt.out_dir = fresh_dir.path();
  opt.on_start = nullptr;
  EvalSummary full = run_eval(opt, std::ref(script), checker());
  EXPECT_DOUBLE_EQ(resumed.overall.accuracy.mean, full.overall.accuracy.mean);
  EXPECT_DOUBLE_EQ(resumed.overall.maj_at.at(2).mean, full.overall.maj_at.at(2).mean);

  // A generator that forgets a prompt is a bug, reported as one.
  test::TempDir other;
  opt.out_dir = other.path();
  IndexedGenerateFn forgets = [&](const std::vector<std::string>& prompts, const std::vector<size_t>&, int n,
                                  const PromptDone& done) { done(0, script(prompts, n)[0]); };
  EXPECT_THROW(run_eval(opt, forgets, checker()), Error);
}
