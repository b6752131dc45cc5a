#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "common/error.h"
#include "common/strings.h"
#include "reward/reward_recipe.h"
#include "reward_test_util.h"

using namespace mathrl;
using namespace mathrl::reward_lua;
using namespace mathrl::lua;

namespace {

// A stage the way the RL stage will embed the reward fields.
const Schema& rl_like_schema() {
  static const Schema schema = [] {
    Schema s{"rlrewards", common_stage_fields("rlrewards")};
    for (auto& f : reward_recipe_fields()) s.fields.push_back(f);
    return s;
  }();
  return schema;
}

void register_rl_like() {
  static bool done = false;
  if (done) return;
  done = true;
  register_stage({"rlrewards", "reward fields test stage", &rl_like_schema(), [](RunContext&) { return 0; }});
}

std::string recipe_error(const std::string& path) {
  try {
    Recipe r = Recipe::load(path, {});
    reward_config_from_recipe(r);
  } catch (const RecipeError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(RewardRecipe, BuildsSpecsFromARecipeAndScores) {
  setenv("MATHRL_HOME", test::source_dir().c_str(), 1);
  register_rl_like();
  test::TempDir dir;
  std::filesystem::create_directories(dir.file("rewards"));
  write_file_atomic(dir.file("rewards/mine.lua"), "local M = {}\nfunction M.score(s) return s.record.level end\nreturn M\n");
  write_file_atomic(dir.file("rl.lua"), R"(
return mathrl.rlrewards {
  seed = 5,
  rewards = {
    { name = "correct", builtin = "correct" },
    { name = "format", builtin = "format", weight = 0.1, options = { min_reasoning = 3, think = false } },
    { name = "length", builtin = "length", options = { max_len = 10, cache = 4 } },
    { name = "mine", file = "rewards/mine.lua", fn = "score", weight = 0.5, on_error = -1 },
    { name = "inline", code = "return function(s) return 0.25 end" },
  },
  reward_limits = { instructions = 1000000, memory_mb = 16, threads = 2, on_error = -3 },
})");
  Recipe recipe = Recipe::load(dir.file("rl.lua"), {});
  RewardConfig cfg = reward_config_from_recipe(recipe);
  ASSERT_EQ(cfg.specs.size(), 5u);
  EXPECT_EQ(cfg.options.limits.instruction_budget, 1000000u);
  EXPECT_EQ(cfg.options.limits.memory_cap, size_t(16) << 20);
  EXPECT_EQ(cfg.options.limits.seed, 5u);
  EXPECT_EQ(cfg.options.threads, 2u);
  EXPECT_EQ(cfg.options.trial_samples, 8u);
  EXPECT_EQ(cfg.specs[0].on_error, -3);  // from reward_limits
  EXPECT_EQ(cfg.specs[3].on_error, -1);
  EXPECT_EQ(cfg.specs[3].fn, "score");
  EXPECT_EQ(cfg.specs[0].fn, "reward");
  EXPECT_EQ(cfg.specs[1].weight, 0.1);
  EXPECT_EQ(cfg.specs[1].options_lua, "{min_reasoning = 3, think = false, }");
  EXPECT_TRUE(std::filesystem::equivalent(cfg.specs[3].file, dir.file("rewards/mine.lua"))) << cfg.specs[3].file;

  RewardHost host(cfg.specs, cfg.options);
  Sample s;
  s.completion = "four is it \\boxed{4}";
  s.reference = "4";
  s.completion_ids.assign(8, 1);
  s.record = parse_record(R"({"level": 2})");
  auto r = host.score({s}, 1);
  for (auto& o : r[0].rewards) EXPECT_TRUE(o.ok()) << o.error;
  EXPECT_DOUBLE_EQ(r[0].components.at("correct"), 1);
  EXPECT_DOUBLE_EQ(r[0].components.at("format"), 1);
  EXPECT_DOUBLE_EQ(r[0].components.at("length"), -0.5);
  EXPECT_DOUBLE_EQ(r[0].components.at("mine"), 2);
  EXPECT_DOUBLE_EQ(r[0].total, 1 + 0.1 - 0.5 + 0.5 * 2 + 0.25);
}

TEST(RewardRecipe, DefaultsWhenLimitsAreOmitted) {
  register_rl_like();
  test::TempDir dir;
  write_file_atomic(dir.file("rl.lua"), "return mathrl.rlrewards { rewards = { { name = 'c', builtin = 'correct' } } }");
  RewardConfig cfg = reward_config_from_recipe(Recipe::load(dir.file("rl.lua"), {}));
  EXPECT_EQ(cfg.options.limits.instruction_budget, 20000000u);
  EXPECT_EQ(cfg.options.limits.memory_cap, size_t(64) << 20);
  EXPECT_EQ(cfg.options.threads, 4u);
  EXPECT_EQ(cfg.specs[0].on_error, 0);
  EXPECT_EQ(cfg.specs[0].weight, 1);
}

TEST(RewardRecipe, BadEntriesAreNamed) {
  register_rl_like();
  test::TempDir dir;
  auto check = [&](const std::string& rewards, const std::string& expected) {
    write_file_atomic(dir.file("bad.lua"), "return mathrl.rlrewards { rewards = " + rewards + " }");
    std::string err = recipe_error(dir.file("bad.lua"));
    EXPECT_NE(err.find(expected), std::string::npos) << rewards << " -> " << err;
  };
  check("{ { name = 'c', builtin = 'correct', wieght = 2 } }", "unknown field 'rewards[1].wieght' (did you mean 'rewards[1].weight'?)");
  check("{ { name = 'c', builtin = 'correct', code = 'x' } }", "exactly one of file, code or builtin");
  check("{ { builtin = 'correct' } }", "missing required field 'rewards[1].name'");
  check("{ { name = 'c', builtin = 'corect' } }", "did you mean 'correct'");
  check("{ { name = 'c', builtin = 'correct' }, 5 }", "'rewards[2]' must be a table");
  check("{ { name = 'c', builtin = 'format', options = { f = function() end } } }", "'rewards[1].options' holds a function");
  check("{}", "'rewards' is empty");
  check("{ { name = 'c', builtin = 'correct', weight = 'high' } }", "field 'rewards[1].weight' must be a number, got string");
}

TEST(RewardRecipe, LuaLiteralsRoundTrip) {
  lua_State* L = luaL_newstate();
  luaL_openlibs(L);
  ASSERT_EQ(luaL_dostring(L, "return { a = 1, b = 'x\"y\\n', c = { 1, 2.5, true }, ['not id'] = -0.5, [3] = 'three' }"), LUA_OK);
  std::string lit = to_lua_literal(L, -1, "t");
  std::string code = "local t = " + lit + " return t.a == 1 and t.b == 'x\"y\\n' and t.c[2] == 2.5 and t.c[3] and t['not id'] == -0.5 and t[3] == 'three'";
  ASSERT_EQ(luaL_dostring(L, code.c_str()), LUA_OK) << lua_tostring(L, -1);
  EXPECT_TRUE(lua_toboolean(L, -1)) << lit;
  lua_close(L);
}

TEST(RewardRecipe, SchemaIsDescribed) {
  std::string doc = describe_schema(rl_like_schema());
  EXPECT_NE(doc.find("reward_limits"), std::string::npos);
  EXPECT_NE(doc.find("instructions"), std::string::npos);
  EXPECT_NE(describe_schema(reward_entry_schema()).find("builtin"), std::string::npos);
}
