// recipes/pipeline.lua at its "tiny" size: every stage runs as a sub-run (base, instruct, rl with the
// other areas' stages), each is evaluated on held-out problems, and report.md carries the numbers of
// the evaluation summaries. Seconds on CPU; nothing is learned at this size.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <set>
#include <string>

#include "common/error.h"
#include "common/jsonl.h"
#include "common/strings.h"
#include "support/test_support.h"

namespace mathrl {
namespace {

namespace fs = std::filesystem;

std::set<std::string> questions(const std::string& path) {
  std::set<std::string> out;
  LineReader reader(path);
  std::string line;
  while (reader.next(line)) out.insert(parse_json(line, path)["question"].GetString());
  return out;
}

bool has_events(const std::string& dir) {
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind("events.out.tfevents.", 0) == 0) return true;
  return false;
}

std::string pct(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", 100 * v);
  return buf;
}

// The overall accuracy of the one benchmark in a `mathrl eval`-style summary.json.
double accuracy_of(const std::string& path) {
  auto doc = parse_json(read_file(path), path);
  return doc["results"][0]["overall"]["accuracy"]["mean"].GetDouble();
}

TEST(Pipeline, TinyRunsEveryStageAndReports) {
  test::TempDir dir;
  std::string run = dir.file("pipe");
  auto r = test::run_mathrl({"run", test::source_dir() + "/recipes/pipeline.lua", "--set", "params.size=\"tiny\"",
                             "--set", "params.shared=" + test::shared_dir(), "--set", "params.seed=7", "--out", run});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  // Data: RL problems unseen in SFT; held-out problems in no training set.
  auto sft = questions(run + "/data/sft.jsonl"), rl = questions(run + "/data/rl.jsonl");
  auto pre = questions(run + "/data/pretrain.jsonl"), held = questions(run + "/data/heldout.jsonl");
  EXPECT_EQ(sft.size(), 50u);
  EXPECT_EQ(rl.size(), 20u);
  EXPECT_EQ(held.size(), 6u);
  for (const auto& q : rl) EXPECT_EQ(sft.count(q), 0u) << q;
  for (const auto& q : held) EXPECT_TRUE(!sft.count(q) && !rl.count(q) && !pre.count(q)) << q;

  EXPECT_TRUE(fs::exists(run + "/tokenizer/sp.model"));
  EXPECT_TRUE(fs::exists(run + "/base/model/config.json"));
  EXPECT_TRUE(fs::exists(run + "/instruct/model/config.json"));
  EXPECT_TRUE(fs::exists(run + "/rl/checkpoints/step-2"));
  for (const char* sub : {"", "/base", "/instruct", "/rl"}) EXPECT_TRUE(has_events(run + sub)) << sub;

  std::string md = read_file(run + "/report.md");
  for (const char* stage : {"base", "instruct", "rl"}) {
    std::string eval = str(run, "/eval/", stage);
    double greedy = accuracy_of(eval + "/greedy/summary.json"), mean = accuracy_of(eval + "/sampled/summary.json");
    std::string row = str("| ", stage, " | gsm8k | 6 | ", pct(greedy), " |");
    EXPECT_NE(md.find(row), std::string::npos) << row << "\n" << md;
    EXPECT_NE(md.find(str(" | 2 | ", pct(mean), " |")), std::string::npos) << md;
  }
  for (const char* plot : {"base_loss.svg", "instruct_loss.svg", "rl_reward.svg", "rl_kl.svg", "rl_length.svg",
                           "pass_at_k_gsm8k.svg", "maj_at_k_gsm8k.svg"})
    EXPECT_TRUE(fs::exists(run + "/plots/" + plot)) << plot;

  // params.from: RL again from this run's instruct model; the instruct score is the same model's.
  std::string again = dir.file("again");
  r = test::run_mathrl({"run", test::source_dir() + "/recipes/pipeline.lua", "--set", "params.size=\"tiny\"", "--set",
                        "params.shared=" + test::shared_dir(), "--set", "params.seed=7", "--set",
                        "params.from=\"" + run + "\"", "--out", again});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(fs::exists(again + "/base")) << "base trained again";
  EXPECT_FALSE(fs::exists(again + "/instruct")) << "instruct trained again";
  EXPECT_TRUE(fs::exists(again + "/rl/checkpoints/step-2"));
  EXPECT_EQ(accuracy_of(again + "/eval/instruct/greedy/summary.json"), accuracy_of(run + "/eval/instruct/greedy/summary.json"));
  EXPECT_NE(read_file(again + "/log.txt").find("base and instruct from " + run), std::string::npos);
  r = test::run_mathrl({"run", test::source_dir() + "/recipes/pipeline.lua", "--set", "params.size=\"tiny\"", "--set",
                        "params.shared=" + test::shared_dir(), "--set", "params.from=\"" + dir.file("none") + "\"",
                        "--out", dir.file("bad")});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE((r.out + r.err).find("params.from: "), std::string::npos) << r.out << r.err;
}

}  // namespace
}  // namespace mathrl
