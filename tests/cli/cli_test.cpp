#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include "support/test_support.h"

using mathrl::test::fixture;
using mathrl::test::run_mathrl;
using mathrl::test::TempDir;

namespace {
std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}
}  // namespace

TEST(Cli, HelpListsSubcommands) {
  auto r = run_mathrl({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* cmd : {"run", "version"}) EXPECT_NE(r.out.find(std::string("  ") + cmd), std::string::npos) << cmd;
  r = run_mathrl({"run", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("--set KEY=VALUE"), std::string::npos) << r.out;
}

TEST(Cli, UnknownCommandAndOptionSuggestTheClosest) {
  auto r = run_mathrl({"rnu"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("did you mean 'run'?"), std::string::npos) << r.err;
  r = run_mathrl({"run", "x.lua", "--seeed", "3"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("unknown option '--seeed' (did you mean '--seed'?)"), std::string::npos) << r.err;
  r = run_mathrl({"run", "x.lua", "--seed", "three"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("expects an integer"), std::string::npos) << r.err;
  r = run_mathrl({"run"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("missing argument"), std::string::npos) << r.err;
}

TEST(Cli, RecipeSyntaxErrorExitsTwoWithFileLine) {
  auto r = run_mathrl({"run", fixture("recipes/syntax_error.lua")});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("recipes/syntax_error.lua:4:"), std::string::npos) << r.err;
}

TEST(Cli, RecipeRuntimeErrorExitsTwoWithFileLine) {
  auto r = run_mathrl({"run", fixture("recipes/runtime_error.lua")});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("recipes/runtime_error.lua:3: attempt to index a nil value"), std::string::npos) << r.err;
}

TEST(Cli, RecipeMisspelledFieldExitsTwoWithFileLineAndSuggestion) {
  auto r = run_mathrl({"run", fixture("recipes/misspelled_field.lua")});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("recipes/misspelled_field.lua:2:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("unknown field 'sed' (did you mean 'seed'?)"), std::string::npos) << r.err;
  r = run_mathrl({"run", fixture("recipes/wrong_type.lua")});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("recipes/wrong_type.lua:1:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("field 'seed' must be a integer, got string"), std::string::npos) << r.err;
  r = run_mathrl({"run", fixture("recipes/hello.lua"), "--set", "params.n=2", "--set", "nmae=x", "--check"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("unknown field 'nmae' (did you mean 'name'?)"), std::string::npos) << r.err;
}

TEST(Cli, RecipeErrorsStopBeforeTheRunDirectoryExists) {
  TempDir dir;
  auto r = run_mathrl({"run", fixture("recipes/misspelled_field.lua"), "--runs-root", dir.path()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(Cli, RunWritesRunDirectoryWithResolvedRecipeLogAndMetrics) {
  TempDir dir;
  std::string out = dir.file("run");
  auto r = run_mathrl({"run", fixture("recipes/hello.lua"), "--out", out, "--set", "params.n=4", "--seed", "5"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("total=10"), std::string::npos) << r.out;
  std::string resolved = slurp(out + "/recipe.resolved.lua");
  EXPECT_NE(resolved.find("seed = 5"), std::string::npos) << resolved;
  EXPECT_NE(resolved.find("n = 4"), std::string::npos) << resolved;
  EXPECT_NE(slurp(out + "/log.txt").find("total 10"), std::string::npos);
  std::string metrics = slurp(out + "/metrics.jsonl");
  EXPECT_NE(metrics.find("{\"step\":4,\"total\":10}"), std::string::npos) << metrics;
  // Same seed, same random draw.
  auto again = run_mathrl({"run", fixture("recipes/hello.lua"), "--out", dir.file("run2"), "--set", "params.n=4", "--seed", "5"});
  auto pos = r.out.find("random="), pos2 = again.out.find("random=");
  ASSERT_NE(pos, std::string::npos);
  EXPECT_EQ(r.out.substr(pos, 12), again.out.substr(pos2, 12));
}

TEST(Cli, CallbackErrorNamesTheRecipeLine) {
  TempDir dir;
  auto r = run_mathrl({"run", fixture("recipes/callback_error.lua"), "--out", dir.file("run")});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("recipes/callback_error.lua:5: failure inside main"), std::string::npos) << r.err;
}

TEST(Cli, TokenizerModuleFromARecipe) {
  TempDir dir;
  auto r = run_mathrl({"run", fixture("recipes/tokenizer_script.lua"), "--out", dir.file("run"), "--set",
                       "params.tokenizer=" + mathrl::test::shared_dir() + "/tokenizers/gpt2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // GPT-2 ids for the text, as the reference library gives them.
  EXPECT_NE(r.out.find("ids\t47849,9752,2702,4764,14,17,796,1987,19166,287,1737,13"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("roundtrip\ttrue"), std::string::npos) << r.out;
  // split_digits is on by default: every digit its own piece.
  EXPECT_NE(r.out.find("|1|2|3|"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("bad ids\tfalse\t"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("bad argument #2 to 'tokenizer:decode'"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("unknown option 'vocab_sise' (did you mean 'vocab_size'?)"), std::string::npos) << r.out;
}

namespace {
// A port per test process, so parallel ctest runs do not collide.
std::string free_port(int offset) { return std::to_string(20000 + (::getpid() * 7 + offset) % 20000); }
}  // namespace

TEST(Cli, LaunchRunsRanksOverGloo) {
  TempDir dir;
  auto r = run_mathrl({"launch", "--nproc-per-node", "3", "--master-port", free_port(1), "--", "run",
                       fixture("recipes/dist_script.lua"), "--out", dir.file("run")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (int rank = 0; rank < 3; ++rank)
    EXPECT_NE(r.out.find("rank " + std::to_string(rank) + "/3 backend gloo sum 6 5 max 2"), std::string::npos) << r.out;
  EXPECT_TRUE(std::filesystem::exists(dir.file("run/metrics.jsonl")));
  EXPECT_TRUE(std::filesystem::exists(dir.file("run/metrics.rank2.jsonl")));
  EXPECT_TRUE(std::filesystem::exists(dir.file("run/log.rank1.txt")));
}

TEST(Cli, LaunchEndsTheJobWhenARankFailsAndNamesIt) {
  TempDir dir;
  auto r = run_mathrl({"launch", "--nproc-per-node", "2", "--master-port", free_port(2), "--grace", "2", "--", "run",
                       fixture("recipes/dist_script.lua"), "--out", dir.file("run"), "--set", "params.fail_rank=1"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("job failed: rank 1 failed first: script main:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("rank 1 fails on purpose"), std::string::npos) << r.err;
}
