// The base/instruct stages through `mathrl run`: a run interrupted by SIGINT checkpoints and stops
// (exit status 130); `--resume` continues it and every step's loss equals the uninterrupted run's.
// Two data-parallel ranks over Gloo reproduce one process with the same global batch, also with the
// optimizer state (ZeRO-1) or the gradients too (ZeRO-2) sharded. Recipe errors stop before
// training (exit status 2).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <map>

#include "common/jsonl.h"
#include "common/strings.h"
#include "support/test_support.h"

using namespace mathrl;
namespace fs = std::filesystem;

namespace {

// The recipe finds the data and the tokenizer through these (the child inherits them).
std::string recipe() {
  ::setenv("MATHRL_SHARED_DIR", test::shared_dir().c_str(), 1);
  ::setenv("MATHRL_SOURCE_DIR", test::source_dir().c_str(), 1);
  ::setenv("OMP_NUM_THREADS", "1", 1);  // tiny model: threads only contend on a shared machine
  return test::source_dir() + "/tests/train/resume_recipe.lua";
}

// step -> loss, the last line of each step winning (a resumed run rewrites the steps after its checkpoint).
std::map<long long, double> losses(const std::string& metrics) {
  std::map<long long, double> out;
  LineReader reader(metrics);
  std::string line;
  while (reader.next(line)) {
    auto doc = parse_json(line, metrics);
    if (doc.HasMember("loss")) out[doc["step"].GetInt64()] = doc["loss"].GetDouble();
  }
  return out;
}

}  // namespace

TEST(TrainStage, SigintThenResumeReproducesTheUninterruptedLosses) {
  test::TempDir dir;
  const std::string a = dir.file("a"), b = dir.file("b");
  auto full = test::run_mathrl({"run", recipe(), "--out", a});
  ASSERT_EQ(full.exit_code, 0) << full.err;
  auto expect = losses(a + "/metrics.jsonl");
  ASSERT_EQ(expect.size(), 12u);
  EXPECT_LT(expect.rbegin()->second, expect.begin()->second);
  EXPECT_TRUE(fs::exists(a + "/model/config.json"));
  EXPECT_TRUE(fs::exists(a + "/model/model.safetensors"));
  EXPECT_TRUE(fs::exists(a + "/model/tokenizer.json"));

  // Interrupted: the recipe has SIGINT sent to the run shortly after step 5 (MATHRL_TEST_INTERRUPT_AT).
  ::setenv("MATHRL_TEST_INTERRUPT_AT", "5", 1);
  auto interrupted = test::run_mathrl({"run", recipe(), "--out", b});
  ::unsetenv("MATHRL_TEST_INTERRUPT_AT");
  ASSERT_EQ(interrupted.exit_code, 130) << "an interrupted run exits with 130\n" << interrupted.err;
  EXPECT_NE(interrupted.err.find("--resume"), std::string::npos) << interrupted.err;
  auto partial = losses(b + "/metrics.jsonl");
  ASSERT_GE(partial.size(), 5u);
  ASSERT_LT(partial.size(), 12u);
  EXPECT_TRUE(fs::exists(b + "/checkpoints/step-" + std::to_string(partial.size()) + "/manifest.json"))
      << "the interrupted run checkpoints where it stopped";
  EXPECT_FALSE(fs::exists(b + "/model")) << "no final model from an interrupted run";

  auto resumed = test::run_mathrl({"run", recipe(), "--out", b, "--resume", b});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("resumed from"), std::string::npos) << resumed.err;
  auto got = losses(b + "/metrics.jsonl");
  ASSERT_EQ(got.size(), expect.size());
  for (const auto& [step, loss] : expect) EXPECT_NEAR(got[step], loss, 1e-6) << "step " << step;
}

TEST(TrainStage, TwoGlooRanksEqualOneProcessWithTheGlobalBatch) {
  test::TempDir dir;
  const std::string one = dir.file("one"), two = dir.file("two");
  auto single = test::run_mathrl({"run", recipe(), "--out", one, "--set", "micro_batch=2", "--set", "steps=6"});
  ASSERT_EQ(single.exit_code, 0) << single.err;
  auto dp = test::run_mathrl({"launch", "--nproc-per-node", "2", "--master-port", test::free_port(), "--", "run", recipe(), "--out", two, "--set",
                              "micro_batch=1", "--set", "steps=6"});
  ASSERT_EQ(dp.exit_code, 0) << dp.err;
  auto expect = losses(one + "/metrics.jsonl"), got = losses(two + "/metrics.jsonl");
  ASSERT_EQ(expect.size(), 6u);
  ASSERT_EQ(got.size(), 6u);
  for (const auto& [step, loss] : expect) EXPECT_NEAR(got[step], loss, 1e-5) << "step " << step;
  EXPECT_EQ(losses(two + "/metrics.rank1.jsonl"), got);  // every rank reports the global loss
  // Gradients went through the bucketed reduction, overlapped with the last micro-batch's backward.
  EXPECT_NE(dp.err.find("gradient buckets reduced during backward"), std::string::npos) << dp.err;
  EXPECT_EQ(dp.err.find(": 0 of "), std::string::npos) << dp.err;
}

// A checkpoint written by 2 ranks resumes in 1 process (per-rank micro-batch 1 becomes 2, the
// global batch stays) and continues the 1-process run's losses.
TEST(TrainStage, CheckpointOfTwoRanksResumesInOneProcess) {
  test::TempDir dir;
  const std::string one = dir.file("one"), two = dir.file("two");
  auto single = test::run_mathrl({"run", recipe(), "--out", one, "--set", "micro_batch=2", "--set", "steps=6"});
  ASSERT_EQ(single.exit_code, 0) << single.err;
  auto dp = test::run_mathrl({"launch", "--nproc-per-node", "2", "--master-port", test::free_port(), "--", "run", recipe(), "--out", two, "--set",
                              "micro_batch=1", "--set", "steps=3"});
  ASSERT_EQ(dp.exit_code, 0) << dp.err;
  ASSERT_TRUE(fs::exists(two + "/checkpoints/step-3/manifest.json"));
  auto resumed = test::run_mathrl({"run", recipe(), "--out", two, "--resume", two, "--set", "micro_batch=2", "--set", "steps=6"});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  auto expect = losses(one + "/metrics.jsonl"), got = losses(two + "/metrics.jsonl");
  ASSERT_EQ(got.size(), 6u);
  for (const auto& [step, loss] : expect) EXPECT_NEAR(got[step], loss, 1e-5) << "step " << step;
}

// ZeRO-1 and ZeRO-2 (optimizer state, then gradients, sharded over the ranks) change where state
// lives, not the arithmetic: the losses are the one-process run's, and the checkpoint's one optimizer
// file resumes in one process with the unsharded optimizer.
TEST(TrainStage, ZeroStagesOverTwoRanksEqualOneProcessAndResumeInOne) {
  test::TempDir dir;
  const std::string one = dir.file("one");
  auto single = test::run_mathrl({"run", recipe(), "--out", one, "--set", "micro_batch=2", "--set", "steps=6"});
  ASSERT_EQ(single.exit_code, 0) << single.err;
  auto expect = losses(one + "/metrics.jsonl");
  ASSERT_EQ(expect.size(), 6u);
  for (const char* stage : {"1", "2"}) {
    const std::string two = dir.file(std::string("zero") + stage);
    auto dp = test::run_mathrl({"launch", "--nproc-per-node", "2", "--master-port", test::free_port(), "--", "run", recipe(),
                                "--out", two, "--set", "micro_batch=1", "--set", "steps=3", "--set",
                                std::string("zero_stage=") + stage});
    ASSERT_EQ(dp.exit_code, 0) << dp.err;
    EXPECT_NE(dp.err.find(std::string("ZeRO-") + stage + ": optimizer state of"), std::string::npos) << dp.err;
    ASSERT_TRUE(fs::exists(two + "/checkpoints/step-3/optimizer.safetensors"));
    auto got = losses(two + "/metrics.jsonl");
    ASSERT_EQ(got.size(), 3u);
    for (const auto& [step, loss] : got) EXPECT_NEAR(loss, expect[step], 1e-5) << "ZeRO-" << stage << " step " << step;
    auto resumed = test::run_mathrl({"run", recipe(), "--out", two, "--resume", two, "--set", "micro_batch=2", "--set", "steps=6"});
    ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
    got = losses(two + "/metrics.jsonl");
    ASSERT_EQ(got.size(), 6u);
    for (const auto& [step, loss] : expect) EXPECT_NEAR(got[step], loss, 1e-5) << "ZeRO-" << stage << " resumed, step " << step;
  }
}

TEST(TrainStage, RecipeErrorsStopBeforeTraining) {
  test::TempDir dir;
  auto r = test::run_mathrl({"run", recipe(), "--out", dir.file("x"), "--set", "micro_bach=2"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("micro_batch"), std::string::npos) << r.err;  // did you mean
  r = test::run_mathrl({"run", recipe(), "--out", dir.file("y"), "--set", "schedule=cosin"});
  EXPECT_EQ(r.exit_code, 2);
  r = test::run_mathrl({"run", recipe(), "--out", dir.file("z"), "--set", "zero_stage=3"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("zero_stage must be 0, 1 or 2 (got 3)"), std::string::npos) << r.err;
  auto c = test::run_mathrl({"run", recipe(), "--check"});
  EXPECT_EQ(c.exit_code, 0);
  EXPECT_NE(c.out.find("mathrl.base"), std::string::npos);
}
