// The rl stage end to end through build/mathrl on recipes/tiny_rl.lua (CPU, fixed seeds): the mean
// reward rises; SIGINT then --resume continues exactly as an uninterrupted run; a Lua advantage
// wrapping mathrl.rl.grpo equals the built-in; PPO with a critic runs and checkpoints its critic;
// 2 Gloo ranks (mathrl launch) give the metrics of 1 process with the same global batch.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include <rapidjson/document.h>

#include "support/test_support.h"

namespace fs = std::filesystem;
using mathrl::test::TempDir;

namespace {

using Metrics = std::map<long long, std::map<std::string, double>>;

Metrics read_metrics(const std::string& path) {
  Metrics out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    rapidjson::Document d;
    d.Parse(line.c_str());
    if (d.HasParseError() || !d.IsObject()) continue;
    long long step = d["step"].GetInt64();
    for (auto it = d.MemberBegin(); it != d.MemberEnd(); ++it)
      if (it->value.IsNumber()) out[step][it->name.GetString()] = it->value.GetDouble();
  }
  return out;
}

std::string tiny_recipe() { return mathrl::test::source_dir() + "/recipes/tiny_rl.lua"; }

mathrl::test::ProcessResult run(std::vector<std::string> args) { return mathrl::test::run_mathrl(args); }

// Timing figures differ run to run; everything else must be equal.
bool timing(const std::string& key) { return key.rfind("time/", 0) == 0 || key.rfind("tokens_per_s/", 0) == 0; }

// Exact equality, except `tolerance` (absolute) for the advantage statistics, whose sums run over
// tokens or sequences depending on how advantages are shaped.
void expect_same_metrics(const Metrics& got, const Metrics& want, long long from_step, double tolerance = 0) {
  size_t compared = 0;
  for (const auto& [step, values] : got) {
    ASSERT_GE(step, from_step);
    ASSERT_TRUE(want.count(step)) << "step " << step;
    for (const auto& [k, v] : values) {
      if (timing(k)) continue;
      ASSERT_TRUE(want.at(step).count(k)) << k;
      if (tolerance > 0 && k.rfind("advantage/", 0) == 0)
        EXPECT_NEAR(v, want.at(step).at(k), tolerance) << "step " << step << " " << k;
      else
        EXPECT_EQ(v, want.at(step).at(k)) << "step " << step << " " << k;
      ++compared;
    }
  }
  EXPECT_GT(compared, 20u);
}

// Runs `recipe` (with `sets`) as 1 process and as 2 Gloo ranks, and checks that every step's
// figures of the global batch agree within 1e-5, and that rank 1 reports what rank 0 does.
void expect_two_ranks_equal_one_process(const TempDir& dir, const std::string& recipe, std::vector<std::string> sets,
                                        size_t steps, std::vector<std::string> keys = {}, const std::string& in_log = "") {
  std::vector<std::string> one = {"run", recipe, "--out", dir.file("one")};
  std::vector<std::string> two = {"launch", "--nproc-per-node", "2", "--master-port", mathrl::test::free_port(), "--",
                                  "run", recipe, "--out", dir.file("two")};
  for (const auto& s : sets) {
    for (auto* args : {&one, &two}) args->insert(args->end(), {"--set", s});
  }
  auto single = run(one);
  ASSERT_EQ(single.exit_code, 0) << single.err;
  auto dp = run(two);
  ASSERT_EQ(dp.exit_code, 0) << dp.err;
  EXPECT_NE(dp.err.find("rank 1 of 2 (gloo)"), std::string::npos) << dp.err;
  if (!in_log.empty()) EXPECT_NE(dp.err.find(in_log), std::string::npos) << dp.err;
  Metrics want = read_metrics(dir.file("one/metrics.jsonl")), got = read_metrics(dir.file("two/metrics.jsonl")),
          rank1 = read_metrics(dir.file("two/metrics.rank1.jsonl"));
  ASSERT_EQ(want.size(), steps);
  ASSERT_EQ(got.size(), steps);
  ASSERT_EQ(rank1.size(), steps);
  for (const char* key : {"loss", "reward/mean", "reward/std", "grad_norm", "kl", "entropy", "advantage/std",
                          "completion/length_mean", "groups/kept", "groups/zero_std_fraction", "prompt_cursor"})
    keys.push_back(key);
  for (const auto& [step, values] : want) {
    for (const auto& key : keys) {
      ASSERT_TRUE(values.count(key) && got[step].count(key) && rank1[step].count(key)) << key;
      EXPECT_NEAR(got[step][key], values.at(key), 1e-5) << "step " << step << " " << key;
      EXPECT_EQ(rank1[step][key], got[step][key]) << "step " << step << " " << key;
    }
  }
  // Only rank 0 writes checkpoints, into the run directory.
  EXPECT_TRUE(fs::exists(dir.file("two/checkpoints/step-" + std::to_string(steps) + "/manifest.json")));
  EXPECT_FALSE(fs::exists(dir.file("two/rank1/checkpoints")));
}

}  // namespace

TEST(RlStage, TinyRecipeLearns) {
  TempDir dir;
  auto r = run({"run", tiny_recipe(), "--out", dir.file("run"), "--set", "checkpoint_every=0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Metrics m = read_metrics(dir.file("run/metrics.jsonl"));
  ASSERT_EQ(m.size(), 30u);
  double first = 0, last = 0;
  for (long long s = 1; s <= 5; ++s) first += m[s]["reward/mean"] / 5;
  for (long long s = 26; s <= 30; ++s) last += m[s]["reward/mean"] / 5;
  EXPECT_LT(first, 0.2);  // an untrained 16-token model emits the target about 1 time in 16
  EXPECT_GT(last, first + 0.3) << "first 5 steps " << first << ", last 5 " << last;
  for (const char* key : {"kl", "entropy", "grad_norm", "clip_fraction", "completion/length_mean",
                          "groups/zero_std_fraction", "advantage/std", "reward/target", "time/generate"})
    EXPECT_TRUE(m[30].count(key)) << key;
  EXPECT_TRUE(fs::exists(dir.file("run/checkpoints/step-30/manifest.json")));
  EXPECT_TRUE(fs::exists(dir.file("run/model/config.json"))) << "the trained policy is saved in Hugging Face layout";
  EXPECT_TRUE(fs::exists(dir.file("run/model/model.safetensors")));
}

TEST(RlStage, SigintThenResumeMatchesAnUninterruptedRun) {
  TempDir dir;
  const std::string steps = "steps=12";
  std::string interrupted = dir.file("interrupted");
  std::vector<std::string> args = {mathrl::test::mathrl_binary(), "run", tiny_recipe(), "--out", interrupted,
                                   "--set", steps, "--set", "checkpoint_every=2"};
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int null = ::open("/dev/null", O_WRONLY);
    dup2(null, 2);
    execv(argv[0], argv.data());
    _exit(127);
  }
  // SIGINT once the first checkpoint exists: the run finishes its step, saves, and exits 130.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!fs::exists(interrupted + "/checkpoints/step-2/manifest.json") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  kill(pid, SIGINT);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 130) << "the run ended before the signal arrived";
  Metrics before = read_metrics(interrupted + "/metrics.jsonl");
  ASSERT_FALSE(before.empty());
  const long long stopped = before.rbegin()->first;
  ASSERT_LT(stopped, 12);
  EXPECT_TRUE(fs::exists(interrupted + "/checkpoints/step-" + std::to_string(stopped) + "/manifest.json"));

  auto resumed = run({"run", tiny_recipe(), "--out", dir.file("resumed"), "--set", steps, "--resume", interrupted});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  auto full = run({"run", tiny_recipe(), "--out", dir.file("full"), "--set", steps, "--set", "checkpoint_every=0"});
  ASSERT_EQ(full.exit_code, 0) << full.err;
  Metrics after = read_metrics(dir.file("resumed/metrics.jsonl")), want = read_metrics(dir.file("full/metrics.jsonl"));
  ASSERT_EQ(after.size(), static_cast<size_t>(12 - stopped));
  expect_same_metrics(after, want, stopped + 1);
  expect_same_metrics(before, want, 1);
}

TEST(RlStage, LuaAdvantageWrappingTheBuiltinEqualsTheBuiltin) {
  TempDir dir;
  std::ofstream(dir.file("custom.lua")) << "local r = dofile('" << tiny_recipe() << "')\n"
                                        << "r.advantage = function(group)\n"
                                        << "  assert(#group.rewards == #group.completion_ids and group.step >= 1)\n"
                                        << "  return mathrl.rl.grpo(group.rewards, { scale = false })\n"
                                        << "end\nreturn r\n";
  auto lua = run({"run", dir.file("custom.lua"), "--out", dir.file("lua"), "--set", "steps=4"});
  ASSERT_EQ(lua.exit_code, 0) << lua.err;
  auto builtin = run({"run", tiny_recipe(), "--out", dir.file("builtin"), "--set", "steps=4", "--set", "scale_rewards=false"});
  ASSERT_EQ(builtin.exit_code, 0) << builtin.err;
  expect_same_metrics(read_metrics(dir.file("lua/metrics.jsonl")), read_metrics(dir.file("builtin/metrics.jsonl")), 1);
  // A wrong-sized result is a recipe error naming the function.
  std::ofstream(dir.file("bad.lua")) << "local r = dofile('" << tiny_recipe() << "')\n"
                                     << "r.advantage = function(group) return {1, 2} end\nreturn r\n";
  auto bad = run({"run", dir.file("bad.lua"), "--out", dir.file("bad"), "--set", "steps=1"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("advantage function returned 2 entries"), std::string::npos) << bad.err;
}

TEST(RlStage, PpoWithACriticRunsAndCheckpointsTheCritic) {
  TempDir dir;
  auto r = run({"run", tiny_recipe(), "--out", dir.file("ppo"), "--set", "algorithm=ppo", "--set", "steps=3",
                "--set", "checkpoint_every=0", "--set", "num_iterations=2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Metrics m = read_metrics(dir.file("ppo/metrics.jsonl"));
  ASSERT_EQ(m.size(), 3u);
  for (const char* key : {"value_loss", "value_mean", "critic_grad_norm", "kl", "clip_fraction"}) {
    ASSERT_TRUE(m[3].count(key)) << key;
    EXPECT_TRUE(std::isfinite(m[3][key])) << key;
  }
  EXPECT_GT(m[1]["value_loss"], 0.0);
  EXPECT_TRUE(fs::exists(dir.file("ppo/checkpoints/step-3/critic/model.safetensors")));
  EXPECT_TRUE(fs::exists(dir.file("ppo/checkpoints/step-3/critic_optimizer.safetensors")));
}

TEST(RlStage, DynamicSamplingDropsZeroVarianceGroupsAndDrawsMore) {
  // Reward 1 when the first completion token is the target: an untrained model misses it in all
  // 8 samples of most prompts, so most groups carry no signal.
  TempDir dir;
  std::ofstream(dir.file("binary.lua")) << "local r = dofile('" << tiny_recipe() << "')\n"
                                        << "r.rewards = { { name = 'first', code = [[return function(s) "
                                        << "return s.completion_ids[1] == 7 and 1 or 0 end]] } }\n"
                                        << "return r\n";
  auto r = run({"run", dir.file("binary.lua"), "--out", dir.file("dyn"), "--set", "steps=3", "--set",
                "dynamic_sampling=true", "--set", "max_resample=2", "--set", "checkpoint_every=0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Metrics m = read_metrics(dir.file("dyn/metrics.jsonl"));
  ASSERT_EQ(m.size(), 3u);
  double drawn = 4;
  for (long long s = 1; s <= 3; ++s) {
    EXPECT_LE(m[s]["groups/kept"], 4.0);
    EXPECT_LE(m[s]["groups/resample_rounds"], 2.0);
    if (m[s]["groups/kept"] < 4) EXPECT_EQ(m[s]["groups/resample_rounds"], 2.0);  // gave up only at the limit
    drawn = m[s]["prompt_cursor"];
  }
  EXPECT_GT(m[1]["groups/zero_std_fraction"], 0.0);
  EXPECT_GT(m[1]["groups/resample_rounds"], 0.0);
  EXPECT_GT(drawn, 12.0);  // more prompts drawn than 3 steps x 4
}

TEST(RlStage, ProcessSupervisionWithOneFinalStepEqualsGrpo) {
  // One step per completion, ending at its last token, rewarded with the outcome: the normalized
  // step reward is the GRPO z-score, and it covers every token; the runs must agree exactly.
  TempDir dir;
  std::ofstream(dir.file("process.lua")) << "local r = dofile('" << tiny_recipe() << "')\n"
                                         << "r.advantage = 'process'\n"
                                         << "r.step_rewards = function(s) return { rewards = { s.reward }, "
                                         << "ends = { #s.completion_ids } } end\n"
                                         << "return r\n";
  auto process = run({"run", dir.file("process.lua"), "--out", dir.file("process"), "--set", "steps=4"});
  ASSERT_EQ(process.exit_code, 0) << process.err;
  auto grpo = run({"run", tiny_recipe(), "--out", dir.file("grpo"), "--set", "steps=4"});
  ASSERT_EQ(grpo.exit_code, 0) << grpo.err;
  expect_same_metrics(read_metrics(dir.file("process/metrics.jsonl")), read_metrics(dir.file("grpo/metrics.jsonl")), 1, 1e-12);
  // Without step_rewards the built-in cannot run: a recipe error before any work.
  auto bad = run({"run", tiny_recipe(), "--out", dir.file("bad"), "--set", "advantage='process'", "--set", "steps=1"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("step_rewards"), std::string::npos) << bad.err;
}

TEST(RlStage, LuaModuleExposesTheBuiltinEstimators) {
  // Each mathrl.rl function against the formula written in Lua; errors read like Lua's.
  TempDir dir;
  std::ofstream(dir.file("module.lua")) << R"LUA(
local function near(a, b) assert(math.abs(a - b) < 1e-12, ("%.17g vs %.17g"):format(a, b)) end
return mathrl.script { main = function(run)
  local r = { 1, 0, 0, 1, 1 }
  local m = 3 / 5
  local sd = math.sqrt(((1 - m) ^ 2 * 3 + m ^ 2 * 2) / 4)
  local a = mathrl.rl.grpo(r)
  for i = 1, 5 do near(a[i], (r[i] - m) / (sd + 1e-4)) end
  a = mathrl.rl.grpo(r, { scale = false })
  for i = 1, 5 do near(a[i], r[i] - m) end
  a = mathrl.rl.rloo(r)
  for i = 1, 5 do near(a[i], r[i] - (3 - r[i]) / 4) end
  local g = mathrl.rl.reinforce_pp({ { 1, 0 }, { 2, 2, 5 } })
  local c = { 0.5, -0.5, -1, -1, 2 }
  local s2 = 0
  for _, x in ipairs(c) do s2 = s2 + x * x end
  local csd = math.sqrt(s2 / 4) + 1e-4
  near(g[1][1], 0.5 / csd); near(g[2][3], 2 / csd)
  local p = mathrl.rl.process({ { 1, 0 } }, { { 2, 3 } }, { 4 })
  local pm, psd = 0.5, math.sqrt(0.5) + 1e-4
  near(p[1][1], (1 - pm) / psd + (0 - pm) / psd); near(p[1][3], (0 - pm) / psd); near(p[1][4], 0)
  local adv, ret = mathrl.rl.gae({ 0, 1 }, { 0.5, 0.25 }, { gamma = 0.9, lambda = 0.8 })
  local d2 = 1 - 0.25
  local d1 = 0 + 0.9 * 0.25 - 0.5
  near(adv[2], d2); near(adv[1], d1 + 0.9 * 0.8 * d2); near(ret[1], adv[1] + 0.5)
  local names = table.concat(mathrl.rl.names(), ",")
  assert(names == "grpo,rloo,reinforce++,process", names)
  local ok, err = pcall(mathrl.rl.grpo, { 1, "x" })
  assert(not ok and err:find("bad argument #1 to 'mathrl.rl.grpo'", 1, true), err)
  run.log("module ok")
end }
)LUA";
  auto r = run({"run", dir.file("module.lua"), "--out", dir.file("out")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("module ok"), std::string::npos) << r.err;
}

TEST(RlStage, TwoGlooRanksEqualOneProcessWithTheGlobalBatch) {
  // 4 prompts x 8 completions per step: each rank rolls out, scores and trains on 2 whole groups.
  TempDir dir;
  expect_two_ranks_equal_one_process(dir, tiny_recipe(), {"steps=4", "prompts_per_step=4", "checkpoint_every=0"}, 4);
}

TEST(RlStage, ZeroStage2OverTwoGlooRanksEqualsOneProcessAndResumesInOne) {
  // The policy's optimizer state and gradients sharded over the ranks: the same numbers, and the
  // checkpoint's one optimizer file continues in one process.
  TempDir dir;
  expect_two_ranks_equal_one_process(dir, tiny_recipe(), {"steps=3", "prompts_per_step=4", "checkpoint_every=0",
                                                          "zero_stage=2"}, 3, {}, "ZeRO-2: policy optimizer state of");
  EXPECT_TRUE(fs::exists(dir.file("two/checkpoints/step-3/optimizer.safetensors")));
  auto resumed = run({"run", tiny_recipe(), "--out", dir.file("two"), "--resume", dir.file("two"), "--set", "steps=4",
                      "--set", "prompts_per_step=4", "--set", "checkpoint_every=0"});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("resumed from"), std::string::npos) << resumed.err;
}

TEST(RlStage, ShardedReferenceOverTwoGlooRanksEqualsOneProcess) {
  // Each rank keeps half of the reference model; 3 prompts per step (2 groups on rank 0, 1 on rank 1)
  // and a small token budget give the ranks different numbers of scoring passes, which they even
  // out (every sharded forward is collective). The KL to the reference must come out the same.
  TempDir dir;
  expect_two_ranks_equal_one_process(dir, tiny_recipe(), {"steps=3", "prompts_per_step=3", "token_budget=24",
                                                          "shard_reference=true", "checkpoint_every=0"}, 3, {},
                                     "reference model sharded over 2 ranks");
  auto single = run({"run", tiny_recipe(), "--out", dir.file("single"), "--set", "steps=1", "--set", "shard_reference=true"});
  ASSERT_EQ(single.exit_code, 0) << single.err;
  EXPECT_NE(single.err.find("shard_reference has no effect in one process"), std::string::npos) << single.err;
}

TEST(RlStage, TwoGlooRanksWithDynamicSamplingAndUnevenShardsEqualOneProcess) {
  // 3 prompts per step (2 + 1 per rank) and groups dropped for zero reward variance, so the ranks
  // redraw together and hold different numbers of groups; REINFORCE++ takes its std over both ranks.
  TempDir dir;
  std::ofstream(dir.file("binary.lua")) << "local r = dofile('" << tiny_recipe() << "')\n"
                                        << "r.rewards = { { name = 'first', code = [[return function(s) "
                                        << "return s.completion_ids[1] == 7 and 1 or 0 end]] } }\n"
                                        << "return r\n";
  expect_two_ranks_equal_one_process(dir, dir.file("binary.lua"),
                                     {"steps=2", "prompts_per_step=3", "dynamic_sampling=true", "max_resample=2",
                                      "advantage='reinforce++'", "checkpoint_every=0"}, 2);
}

TEST(RlStage, TwoGlooRanksEqualOneProcessForPpo) {
  // The critic's gradients are summed too, and the GAE advantages are whitened over both ranks.
  TempDir dir;
  expect_two_ranks_equal_one_process(dir, tiny_recipe(), {"steps=2", "prompts_per_step=4", "algorithm=ppo",
                                                          "num_iterations=2", "checkpoint_every=0"}, 2,
                                     {"value_loss", "value_mean", "critic_grad_norm", "advantage/mean"});
}
