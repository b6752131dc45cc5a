// report.md from a synthetic run: the accuracy table holds the numbers of the summaries (written
// by the evaluator's own summary_json), plots exist and are referenced, metrics are summarized.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/error.h"
#include "common/strings.h"
#include "eval/evaluator.h"
#include "report/run_report.h"
#include "support/test_support.h"

namespace mathrl::report {
namespace {

namespace fs = std::filesystem;

void write(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << text;
}

std::string pct(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", 100 * v);
  return buf;
}

eval::EvalSummary summary(const std::string& bench, int samples, int problems, double acc, std::map<int, double> pass,
                          std::map<int, double> maj) {
  eval::EvalSummary s;
  s.benchmark = bench;
  s.samples = samples;
  s.overall.problems = problems;
  s.overall.accuracy = {acc, acc - 0.1, acc + 0.1};
  for (auto [k, v] : pass) s.overall.pass_at[k] = {v, v - 0.1, v + 0.1};
  for (auto [k, v] : maj) s.overall.maj_at[k] = {v, v - 0.1, v + 0.1};
  return s;
}

struct Stage {
  std::string name;
  double greedy, mean, pass4, pass8, maj4, maj8;
};

class ReportTest : public ::testing::Test {
 protected:
  test::TempDir dir;
  std::string run = dir.file("run-1");
  std::vector<Stage> stages = {{"instruct", 0.30, 0.28, 0.55, 0.70, 0.35, 0.40}, {"rl", 0.45, 0.43, 0.60, 0.72, 0.50, 0.52}};

  void SetUp() override {
    write(run + "/metrics.jsonl", "{\"step\":1,\"loss\":2.5}\n{\"step\":2,\"loss\":1.5,\"lr\":0.001}\n");
    std::string rl;
    for (int step = 1; step <= 5; ++step)
      rl += str("{\"step\":", step, ",\"reward\":", 0.1 * step, ",\"kl\":", step == 3 ? "null" : str(0.01 * step),
                ",\"completion_length\":", 100 + step, ",\"accuracy\":", 0.2 + 0.05 * step, "}\n");
    write(run + "/rl/metrics.jsonl", rl);
    for (const auto& s : stages) {
      // Greedy as a bare summary_json object; sampled in `mathrl eval`'s {"results": [...]} wrapper.
      write(run + "/eval/" + s.name + "/summary.json", eval::summary_json(summary("gsm8k", 1, 40, s.greedy, {{1, s.greedy}}, {{1, s.greedy}})));
      write(run + "/eval/" + s.name + "/sampled/summary.json",
            "{\"settings\":{},\"results\":[" +
                eval::summary_json(summary("gsm8k", 8, 40, s.mean, {{1, s.mean}, {4, s.pass4}, {8, s.pass8}},
                                           {{1, s.mean}, {4, s.maj4}, {8, s.maj8}})) +
                "],\"generation\":[]}");
    }
  }
};

TEST_F(ReportTest, FindsSummariesByStage) {
  auto results = find_eval_results(run);
  ASSERT_EQ(results.size(), 4u);
  EXPECT_EQ(results[0].stage, "instruct");
  EXPECT_EQ(results[3].stage, "rl");
  for (const auto& r : results) {
    EXPECT_EQ(r.benchmark, "gsm8k");
    EXPECT_EQ(r.problems, 40);
    if (r.samples == 8) {
      const Stage& s = r.stage == "rl" ? stages[1] : stages[0];
      EXPECT_DOUBLE_EQ(r.accuracy, s.mean);
      EXPECT_DOUBLE_EQ(r.pass_at.at(4), s.pass4);
      EXPECT_DOUBLE_EQ(r.maj_at.at(8), s.maj8);
    }
  }
}

TEST_F(ReportTest, TableRowsCarryTheNumbers) {
  std::string path = write_run_report(run, {"Synthetic pipeline"});
  EXPECT_EQ(path, run + "/report.md");
  std::string md = read_file(path);
  EXPECT_NE(md.find("# Synthetic pipeline\n"), std::string::npos);
  EXPECT_NE(md.find("| stage | benchmark | problems | greedy | Δ greedy | samples | mean@n | maj@4 | maj@8 | pass@4 | pass@8 |"),
            std::string::npos)
      << md;
  char delta[16];
  std::snprintf(delta, sizeof delta, "%+.1f", 100 * (stages[1].greedy - stages[0].greedy));
  for (size_t i = 0; i < stages.size(); ++i) {
    const Stage& s = stages[i];
    std::string row = str("| ", s.name, " | gsm8k | 40 | ", pct(s.greedy), " | ", i == 0 ? "–" : delta, " | 8 | ", pct(s.mean),
                          " | ", pct(s.maj4), " | ", pct(s.maj8), " | ", pct(s.pass4), " | ", pct(s.pass8), " |");
    EXPECT_NE(md.find(row), std::string::npos) << "missing row: " << row << "\n" << md;
  }
  // Stages appear in pipeline order.
  EXPECT_LT(md.find("| instruct |"), md.find("| rl |"));
}

TEST_F(ReportTest, PlotsAreWrittenAndReferenced) {
  write_run_report(run);
  std::string md = read_file(run + "/report.md");
  EXPECT_NE(md.find("# Run run-1"), std::string::npos);
  for (const char* plot : {"run_loss.svg", "rl_reward.svg", "rl_kl.svg", "rl_length.svg", "rl_accuracy.svg",
                           "pass_at_k_gsm8k.svg", "maj_at_k_gsm8k.svg"}) {
    EXPECT_TRUE(fs::exists(run + "/plots/" + plot)) << plot;
    EXPECT_NE(md.find(str("](plots/", plot, ")")), std::string::npos) << plot;
  }
  std::string pass = read_file(run + "/plots/pass_at_k_gsm8k.svg");
  EXPECT_NE(pass.find(">instruct</text>"), std::string::npos);
  EXPECT_NE(pass.find(">rl</text>"), std::string::npos);
  EXPECT_NE(pass.find(">pass@k (%)</text>"), std::string::npos);
  std::string kl = read_file(run + "/plots/rl_kl.svg");
  EXPECT_NE(kl.find("<polyline"), std::string::npos);
  // The null KL at step 3 is skipped: 4 points in the metric table, last value 0.05.
  EXPECT_NE(md.find("| kl | 4 | 1 | 5 | 0.05 | 0.01 | 0.05 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| lr | 1 | 2 | 2 | 0.001 | 0.001 | 0.001 |"), std::string::npos) << md;
}

TEST(Report, MetricsReaderSkipsNullsAndNamesBadLines) {
  test::TempDir dir;
  write(dir.file("m.jsonl"), "{\"step\":1,\"a\":1.5,\"b\":null}\n\n{\"step\":4,\"a\":-2}\n");
  auto m = read_metrics_jsonl(dir.file("m.jsonl"));
  ASSERT_EQ(m.at("a").size(), 2u);
  EXPECT_EQ(m.at("a")[1], (std::pair<double, double>{4, -2}));
  EXPECT_EQ(m.count("b"), 0u);
  write(dir.file("bad.jsonl"), "{\"step\":1}\n{\"step\":\n");
  try {
    read_metrics_jsonl(dir.file("bad.jsonl"));
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:2"), std::string::npos) << e.what();
  }
}

TEST(Report, EmptyRunAndMissingDirectory) {
  test::TempDir dir;
  std::string md = read_file(write_run_report(dir.path()));
  EXPECT_NE(md.find("No evaluation summaries"), std::string::npos);
  EXPECT_NE(md.find("No metrics.jsonl"), std::string::npos);
  EXPECT_THROW(write_run_report(dir.file("absent")), std::exception);
}

}  // namespace
}  // namespace mathrl::report
