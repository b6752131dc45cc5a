#include <gtest/gtest.h>

#include "common/error.h"
#include "lua_host.h"
#include "schema.h"

using namespace mathrl;
using namespace mathrl::lua;

namespace {

const Schema kInner{"inner", {
    {"beta", FieldType::Number, "0.04", "KL coefficient"},
    {"num_generations", FieldType::Int, "64", "samples per prompt"},
    {"loss_type", FieldType::String, "'grpo'", "aggregation", nullptr, {"grpo", "dapo", "dr_grpo"}},
}};
const Schema kOuter{"outer", {
    {"name", FieldType::String, "", "run name"},
    {"lr", FieldType::NumberOrFunction, "1e-6", "learning rate"},
    {"rl", FieldType::Section, "", "RL settings", &kInner},
    {"mix", FieldType::Table, "", "data mix"},
}};

struct State {
  StatePtr L{luaL_newstate()};
  State() { luaL_openlibs(L.get()); }
  // Evaluates `expr` and leaves the value on the stack.
  void eval(const std::string& expr) {
    ASSERT_EQ(luaL_loadstring(L.get(), ("return " + expr).c_str()), LUA_OK);
    protected_call(L.get(), 0, 1, "test");
  }
  std::string get(const std::string& expr) {
    lua_setglobal(L.get(), "R");
    eval(expr);
    std::string v = describe_value(L.get(), -1);
    lua_pop(L.get(), 1);
    lua_getglobal(L.get(), "R");
    return v;
  }
};

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const RecipeError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Schema, FillsDefaultsAndSections) {
  State s;
  s.eval("{ name = 'x' }");
  validate(s.L.get(), -1, kOuter, "", "");
  EXPECT_EQ(s.get("R.rl.beta"), "0.040000000000000001");
  EXPECT_EQ(s.get("R.rl.num_generations"), "64");
  EXPECT_EQ(s.get("R.rl.loss_type"), "\"grpo\"");
  EXPECT_EQ(s.get("R.lr"), "9.9999999999999995e-07");
}

TEST(Schema, UnknownFieldNamesTheClosestValidOne) {
  State s;
  s.eval("{ rl = { bta = 0.1 } }");
  std::string err = error_of([&] { validate(s.L.get(), -1, kOuter, "", "recipes/x.lua:3: "); });
  EXPECT_NE(err.find("recipes/x.lua:3: unknown field 'rl.bta' (did you mean 'rl.beta'?)"), std::string::npos) << err;
}

TEST(Schema, WrongTypesAndChoicesAreRejected) {
  State s;
  s.eval("{ rl = { num_generations = 2.5 } }");
  EXPECT_NE(error_of([&] { validate(s.L.get(), -1, kOuter, "", ""); }).find("'rl.num_generations' must be a integer"), std::string::npos);
  lua_pop(s.L.get(), 1);
  s.eval("{ rl = { loss_type = 'grp' } }");
  std::string err = error_of([&] { validate(s.L.get(), -1, kOuter, "", ""); });
  EXPECT_NE(err.find("expected one of: grpo, dapo, dr_grpo (did you mean 'grpo'?)"), std::string::npos) << err;
  lua_pop(s.L.get(), 1);
  s.eval("{ lr = 'fast' }");
  EXPECT_NE(error_of([&] { validate(s.L.get(), -1, kOuter, "", ""); }).find("'lr' must be a number or function, got string"), std::string::npos);
  lua_pop(s.L.get(), 1);
  s.eval("{ lr = function(step) return 1e-3 end, rl = { num_generations = 8.0 } }");
  validate(s.L.get(), -1, kOuter, "", "");  // a function is fine; 8.0 becomes the integer 8
  EXPECT_EQ(s.get("math.type(R.rl.num_generations)"), "\"integer\"");
}

TEST(Schema, OverridesByDottedPath) {
  State s;
  s.eval("{ }");
  apply_override(s.L.get(), -1, kOuter, "rl.beta=0.02");
  apply_override(s.L.get(), -1, kOuter, "rl.num_generations=8");
  apply_override(s.L.get(), -1, kOuter, "name=trial3");
  apply_override(s.L.get(), -1, kOuter, "mix={gsm8k = 0.7, math = 0.3}");
  validate(s.L.get(), -1, kOuter, "", "");
  EXPECT_EQ(s.get("R.rl.beta"), "0.02");
  EXPECT_EQ(s.get("R.rl.num_generations"), "8");
  EXPECT_EQ(s.get("R.name"), "\"trial3\"");
  EXPECT_EQ(s.get("R.mix.math"), "0.29999999999999999");
  std::string err = error_of([&] { apply_override(s.L.get(), -1, kOuter, "rl.bta=0.1"); });
  EXPECT_NE(err.find("unknown field 'rl.bta' (did you mean 'rl.beta'?)"), std::string::npos) << err;
  EXPECT_NE(error_of([&] { apply_override(s.L.get(), -1, kOuter, "rl.num_generations=many"); }).find("expected a number"), std::string::npos);
  EXPECT_NE(error_of([&] { apply_override(s.L.get(), -1, kOuter, "mix={os.exit()}"); }).find("mix"), std::string::npos);
  EXPECT_NE(error_of([&] { apply_override(s.L.get(), -1, kOuter, "novalue"); }).find("KEY=VALUE"), std::string::npos);
}

TEST(Schema, BareWordsInFreeFormFieldsAreStrings) {
  State s;
  s.eval("{ }");
  apply_override(s.L.get(), -1, kOuter, "mix.size=gpu");          // a bare word: the string "gpu"
  apply_override(s.L.get(), -1, kOuter, "mix.quoted='smoke'");    // a Lua string literal
  apply_override(s.L.get(), -1, kOuter, "mix.on=true");           // literals keep their type
  apply_override(s.L.get(), -1, kOuter, "mix.n=3");
  validate(s.L.get(), -1, kOuter, "", "");
  EXPECT_EQ(s.get("R.mix.size"), "\"gpu\"");
  EXPECT_EQ(s.get("R.mix.quoted"), "\"smoke\"");
  EXPECT_EQ(s.get("R.mix.on"), "true");
  EXPECT_EQ(s.get("R.mix.n"), "3");
}
