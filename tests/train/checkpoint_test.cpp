// Checkpoints: round trip of model, optimizer, RNG and state; keep-last and best; incomplete and
// corrupted directories are never valid; a process SIGKILLed while writing leaves the previous
// checkpoint valid (a helper executable is killed mid-write).
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <torch/torch.h>

#include "common/error.h"
#include "common/strings.h"
#include "model/checkpoint.h"
#include "support/test_support.h"
#include "train/checkpoint.h"
#include "train/optimizer.h"
#include "train_test_util.h"

extern char** environ;

using namespace mathrl;
using namespace mathrl::train;
namespace fs = std::filesystem;

namespace {

bool same_weights(model::Decoder& a, model::Decoder& b) {
  auto pa = a->named_parameters(), pb = b->named_parameters();
  for (const auto& item : pa)
    if (!at::equal(item.value(), pb[item.key()])) return false;
  return true;
}

// A child process whose stdout we read line by line.
struct Child {
  pid_t pid = -1;
  FILE* out = nullptr;
  Child(const std::string& dir, const std::string& mode) {
    int fds[2];
    EXPECT_EQ(::pipe(fds), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    std::string exe = MATHRL_CKPT_WRITER;
    char* argv[] = {exe.data(), const_cast<char*>(dir.c_str()), const_cast<char*>(mode.c_str()), nullptr};
    EXPECT_EQ(posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    ::close(fds[1]);
    out = ::fdopen(fds[0], "r");
  }
  std::string line() {
    char buf[256];
    if (!std::fgets(buf, sizeof buf, out)) return "";
    return std::string(buf);
  }
  void kill9() {
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFSIGNALED(status));
  }
  ~Child() {
    if (out) std::fclose(out);
  }
};

}  // namespace

TEST(Checkpoint, RoundTripModelOptimizerRngAndState) {
  mathrl::test::TempDir dir;
  model::Decoder m = model::random_decoder(train::test::tiny_config(), 1);
  AdamW opt = AdamW::for_module(*m, {});
  // One real step so the optimizer has moments.
  at::Tensor loss = m->logits(m->hidden_states(at::arange(6).reshape({1, 6}))).pow(2).mean();
  loss.backward();
  opt.step(1e-2, loss.item<double>());
  CheckpointManager ckpts(dir.file("checkpoints"), {});
  TrainState st;
  st.step = 7;
  st.data_state = "{\"cursor\":12,\"x\":[1,2]}";
  st.recipe_text = "return mathrl.base{}\n";
  st.counters = {{"tokens", 123456789012ull}, {"seed", 42}};
  st.metrics = {{"eval_loss", 2.5}};
  st.extra_json = "{\"k\":1}";
  at::manual_seed(1234);
  at::rand({3});
  std::string path = ckpts.save(m, &opt, st);
  at::Tensor expect_rand = at::rand({4});  // what the generator yields after the saved state
  EXPECT_EQ(fs::path(path).filename(), "step-7");
  EXPECT_TRUE(CheckpointManager::is_valid(path));
  // transformers' layout: config.json + model.safetensors that our own loader (and HF) reads.
  EXPECT_TRUE(fs::exists(path + "/config.json"));
  EXPECT_TRUE(fs::exists(path + "/model.safetensors"));
  model::Decoder reloaded = model::load_decoder(path);
  EXPECT_TRUE(same_weights(m, reloaded));

  model::Decoder other = model::random_decoder(train::test::tiny_config(), 2);
  AdamW other_opt = AdamW::for_module(*other, {});
  at::manual_seed(999);
  TrainState back = CheckpointManager::load(CheckpointManager::resolve(dir.path()), &other, &other_opt);
  EXPECT_TRUE(at::equal(at::rand({4}), expect_rand));
  EXPECT_TRUE(same_weights(m, other));
  EXPECT_EQ(other_opt.steps(), 1);
  EXPECT_EQ(back.step, 7);
  EXPECT_EQ(back.data_state, st.data_state);
  EXPECT_EQ(back.recipe_text, st.recipe_text);
  EXPECT_EQ(back.counters, st.counters);
  EXPECT_EQ(back.metrics, st.metrics);
  EXPECT_EQ(back.extra_json, st.extra_json);
  // The optimizer continues identically from the loaded state.
  for (auto* o : {&opt, &other_opt}) {
    model::Decoder& mm = o == &opt ? m : other;
    at::Tensor l = mm->logits(mm->hidden_states(at::arange(6).reshape({1, 6}))).pow(2).mean();
    l.backward();
    o->step(1e-2, l.item<double>());
  }
  EXPECT_TRUE(same_weights(m, other));
}

TEST(Checkpoint, KeepsLastNAndTheBest) {
  mathrl::test::TempDir dir;
  model::Decoder m = model::random_decoder(train::test::tiny_config(), 1);
  CheckpointManager ckpts(dir.file("ck"), {2, "eval_loss"});
  const double losses[] = {3.0, 1.0, 2.0, 2.5, 2.7};
  for (int i = 0; i < 5; ++i) {
    TrainState st;
    st.step = (i + 1) * 10;
    st.metrics["eval_loss"] = losses[i];
    ckpts.save(m, nullptr, st);
  }
  std::vector<int64_t> steps;
  for (auto& c : ckpts.valid()) steps.push_back(c.step);
  EXPECT_EQ(steps, (std::vector<int64_t>{20, 40, 50}));
  ASSERT_TRUE(ckpts.best());
  EXPECT_EQ(ckpts.best()->step, 20);
  EXPECT_EQ(ckpts.latest_valid()->step, 50);
}

TEST(Checkpoint, IncompleteOrCorruptedIsNeverValid) {
  mathrl::test::TempDir dir;
  model::Decoder m = model::random_decoder(train::test::tiny_config(), 1);
  CheckpointManager ckpts(dir.file("ck"), {5, ""});
  TrainState st;
  st.step = 1;
  std::string good = ckpts.save(m, nullptr, st);
  st.step = 2;
  std::string second = ckpts.save(m, nullptr, st);
  EXPECT_EQ(ckpts.latest_valid()->step, 2);
  // A truncated weights file: sizes disagree with the manifest.
  fs::resize_file(second + "/model.safetensors", fs::file_size(second + "/model.safetensors") / 2);
  EXPECT_FALSE(CheckpointManager::is_valid(second));
  EXPECT_EQ(ckpts.latest_valid()->step, 1);
  EXPECT_THROW(CheckpointManager::load(second, &m, nullptr), DataError);
  // No manifest; a temporary name; a garbled manifest.
  fs::copy(good, dir.file("ck/step-3"), fs::copy_options::recursive);
  fs::copy(good, dir.file("ck/step-4.tmp-1"), fs::copy_options::recursive);
  EXPECT_TRUE(CheckpointManager::is_valid(dir.file("ck/step-3")) == false);  // manifest says step 1
  fs::remove(dir.file("ck/step-3/manifest.json"));
  EXPECT_FALSE(CheckpointManager::is_valid(dir.file("ck/step-3")));
  EXPECT_FALSE(CheckpointManager::is_valid(dir.file("ck/step-4.tmp-1")));
  fs::copy(good, dir.file("ck/step-5"), fs::copy_options::recursive);
  write_file_atomic(dir.file("ck/step-5/manifest.json"), "{\"format\": ");
  EXPECT_FALSE(CheckpointManager::is_valid(dir.file("ck/step-5")));
  EXPECT_EQ(ckpts.latest_valid()->step, 1);
  EXPECT_THROW(CheckpointManager::resolve(dir.file("nothing-here")), UsageError);
}

TEST(Checkpoint, SigkillDuringWriteLeavesThePreviousValid) {
  mathrl::test::TempDir dir;
  const std::string ck = dir.file("checkpoints");
  {
    Child child(ck, "pause");
    EXPECT_EQ(child.line(), "saved 1\n");
    EXPECT_EQ(child.line(), "writing\n");  // step-2's files are on disk, its manifest is not
    child.kill9();
    bool saw_tmp = false;
    for (auto& e : fs::directory_iterator(ck)) saw_tmp |= e.path().filename().string().rfind("step-2.tmp-", 0) == 0;
    EXPECT_TRUE(saw_tmp);
  }
  CheckpointManager ckpts(ck, {1000, ""});
  ASSERT_TRUE(ckpts.latest_valid());
  EXPECT_EQ(ckpts.latest_valid()->step, 1);
  EXPECT_EQ(CheckpointManager::resolve(ck), ck + "/step-1");
  model::Decoder m = model::random_decoder(train::test::tiny_config(), 5);
  TrainState st = CheckpointManager::load(ckpts.latest_valid()->path, &m, nullptr);
  EXPECT_EQ(st.counters.at("step_again"), 1u);
  // The next save cleans up the dead writer's temporary directory.
  st.step = 9;
  ckpts.save(m, nullptr, st);
  for (auto& e : fs::directory_iterator(ck)) EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos);

  // Kill a writer of a larger model at arbitrary moments: whatever it was doing, the latest valid
  // checkpoint is at least the last one it reported and loads completely.
  for (int delay_ms : {120, 260, 410}) {
    const std::string loop_dir = dir.file(str("loop", delay_ms));
    Child child(loop_dir, "loop");
    int64_t reported = 0;
    std::string l = child.line();  // the first checkpoint is complete
    ASSERT_EQ(l, "saved 1\n");
    reported = 1;
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    child.kill9();
    while (!(l = child.line()).empty()) reported = std::stoll(l.substr(6));
    CheckpointManager loop_ckpts(loop_dir, {1000, ""});
    auto latest = loop_ckpts.latest_valid();
    ASSERT_TRUE(latest);
    EXPECT_GE(latest->step, reported);
    model::ModelConfig c = train::test::tiny_config(2048);
    c.hidden_size = 128, c.intermediate_size = 384, c.num_hidden_layers = 4;
    model::Decoder big = model::random_decoder(c, 1);
    AdamW opt = AdamW::for_module(*big, {});
    TrainState s = CheckpointManager::load(latest->path, &big, &opt);
    EXPECT_EQ(s.counters.at("step_again"), static_cast<uint64_t>(latest->step));
    // Weights are the initial ones plus `step` (each save added 1 to every parameter first).
    model::Decoder init = model::random_decoder(c, 1);
    at::Tensor diff = big->model->norm->weight - init->model->norm->weight;
    EXPECT_NEAR(diff.mean().item<double>(), static_cast<double>(latest->step), 1e-3);
  }
}
