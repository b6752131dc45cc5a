#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>

#include "common/strings.h"
#include "reward/reward_host.h"
#include "reward_test_util.h"

using namespace mathrl;
using namespace mathrl::reward_lua;
using namespace mathrl::reward_lua::testutil;

namespace {

RewardSpec file_reward(const std::string& name, const std::string& path) {
  RewardSpec s;
  s.name = name;
  s.file = path;
  return s;
}

// Overwrites a file and moves its mtime forward, so a same-second rewrite is still noticed by the
// mtime check even on coarse-grained file systems (the size changes in most edits below too).
void rewrite(const std::string& path, const std::string& text) {
  namespace fs = std::filesystem;
  fs::file_time_type before{};
  bool existed = fs::exists(path);
  if (existed) before = fs::last_write_time(path);
  write_file_atomic(path, text);
  if (existed && fs::last_write_time(path) <= before) fs::last_write_time(path, before + std::chrono::seconds(1));
}

struct Recorder {
  std::vector<RewardEvent> events;
  EventSink sink() {
    return [this](const RewardEvent& e) { events.push_back(e); };
  }
  size_t count(RewardEvent::Kind k) const {
    size_t n = 0;
    for (const auto& e : events) n += e.kind == k;
    return n;
  }
  const RewardEvent* last(RewardEvent::Kind k) const {
    for (auto it = events.rbegin(); it != events.rend(); ++it)
      if (it->kind == k) return &*it;
    return nullptr;
  }
};

}  // namespace

// The acceptance test: a loop scores a batch per step and polls between steps while the file is
// edited under it.
TEST(HotSwap, EditIsSeenAtNextStepAndBrokenEditsAreRejected) {
  test::TempDir dir;
  std::string path = dir.file("correct.lua");
  rewrite(path, "return function(s) return 1 end\n");
  RewardHost host({file_reward("mine", path), inline_reward("fixed", "return function(s) return 10 end")}, small_options(2));
  Recorder rec;
  host.set_event_sink(rec.sink());
  auto samples = make_samples(4);
  std::vector<double> seen;
  for (long long step = 1; step <= 5; ++step) {
    host.check_for_updates(step);
    auto r = host.score(samples, step);
    seen.push_back(r[0].components.at("mine"));
    for (const auto& x : r) EXPECT_DOUBLE_EQ(x.components.at("mine"), seen.back()) << "step " << step;
    if (step == 1) rewrite(path, "-- version two\nreturn function(s) return 2 + #s.completion_ids * 0 end\n");
    if (step == 2) rewrite(path, "-- broken edit\nreturn function(s) return 3 \n");
    if (step == 3)  // loads, but fails on cached samples (the last 8: steps 2 and 3)
      rewrite(path, "return function(s) if s.index == 2 then return s.record.nothing.here end return 4 end\n");
    if (step == 4) rewrite(path, "return function(s) return 5 end\n");
  }
  EXPECT_EQ(seen, (std::vector<double>{1, 2, 2, 2, 5}));
  EXPECT_EQ(host.stats().swaps, 2);
  EXPECT_EQ(host.stats().rejected_swaps, 2);
  ASSERT_EQ(rec.count(RewardEvent::Kind::SwapApplied), 2u);
  ASSERT_EQ(rec.count(RewardEvent::Kind::SwapRejected), 2u);

  // The swaps name the file's FNV-1a 64 hash and the step.
  const RewardEvent* applied = rec.last(RewardEvent::Kind::SwapApplied);
  EXPECT_EQ(applied->step, 5);
  EXPECT_EQ(applied->hash, hex64(fnv1a64("return function(s) return 5 end\n")));
  EXPECT_EQ(applied->hash.size(), 16u);
  EXPECT_NE(applied->message.find(applied->hash), std::string::npos) << applied->message;
  EXPECT_EQ(host.file_hashes()[0], applied->hash);
  EXPECT_EQ(host.file_hashes()[1], "");

  std::vector<const RewardEvent*> rejected;
  for (const auto& e : rec.events)
    if (e.kind == RewardEvent::Kind::SwapRejected) rejected.push_back(&e);
  EXPECT_EQ(rejected[0]->step, 3);
  EXPECT_NE(rejected[0]->message.find("does not load"), std::string::npos) << rejected[0]->message;
  EXPECT_NE(rejected[0]->message.find("correct.lua:3:"), std::string::npos) << rejected[0]->message;
  EXPECT_NE(rejected[0]->message.find("keeping the running version"), std::string::npos);
  EXPECT_EQ(rejected[1]->step, 4);
  EXPECT_NE(rejected[1]->message.find("on cached sample 1 of step 2"), std::string::npos) << rejected[1]->message;
  EXPECT_NE(rejected[1]->message.find("attempt to index"), std::string::npos) << rejected[1]->message;
}

TEST(HotSwap, RejectedVersionIsNotRetriedUntilTheFileChangesAgain) {
  test::TempDir dir;
  std::string path = dir.file("r.lua");
  rewrite(path, "return function(s) return 1 end");
  RewardHost host({file_reward("r", path)}, small_options(1));
  Recorder rec;
  host.set_event_sink(rec.sink());
  rewrite(path, "return function(s) return 2 end +");
  EXPECT_FALSE(host.check_for_updates(1));
  EXPECT_FALSE(host.check_for_updates(2));
  EXPECT_EQ(rec.count(RewardEvent::Kind::SwapRejected), 1u);
  // Touching without changing the content is not a swap either.
  rewrite(path, "return function(s) return 1 end");
  EXPECT_FALSE(host.check_for_updates(3));
  EXPECT_EQ(rec.events.size(), 1u);
  // A deleted file keeps the running version.
  std::filesystem::remove(path);
  EXPECT_FALSE(host.check_for_updates(4));
  EXPECT_DOUBLE_EQ(host.score(make_samples(1), 4)[0].total, 1);
  rewrite(path, "return function(s) return 7 end");
  EXPECT_TRUE(host.check_for_updates(5));
  EXPECT_DOUBLE_EQ(host.score(make_samples(1), 5)[0].total, 7);
}

TEST(HotSwap, SighupForcesAContentCheck) {
  namespace fs = std::filesystem;
  test::TempDir dir;
  std::string path = dir.file("h.lua");
  rewrite(path, "return function(s) return 1 end");
  RewardHost host({file_reward("h", path)}, small_options(1));
  host.set_event_sink([](const RewardEvent&) {});
  // Same size, mtime put back: the poll cannot see the change...
  auto mtime = fs::last_write_time(path);
  write_file_atomic(path, "return function(s) return 8 end");
  fs::last_write_time(path, mtime);
  EXPECT_FALSE(host.check_for_updates(1));
  EXPECT_DOUBLE_EQ(host.score(make_samples(1), 1)[0].total, 1);
  // ...until SIGHUP asks for a content check.
  install_sighup_handler();
  uint64_t before = sighup_count();
  std::raise(SIGHUP);
  EXPECT_EQ(sighup_count(), before + 1);
  EXPECT_TRUE(host.check_for_updates(2));
  EXPECT_DOUBLE_EQ(host.score(make_samples(1), 2)[0].total, 8);
  EXPECT_FALSE(host.check_for_updates(3));
}
