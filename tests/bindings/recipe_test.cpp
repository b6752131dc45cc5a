#include <gtest/gtest.h>

#include <fstream>

#include "common/error.h"
#include "recipe.h"
#include "support/test_support.h"

using namespace mathrl;
using namespace mathrl::lua;

namespace {

const Schema kToySection{"toy.train", {
    {"steps", FieldType::Int, "10", "steps"},
    {"lr", FieldType::NumberOrFunction, "0.1", "learning rate"},
}};
const Schema kToy{"toy", {
    {"name", FieldType::String, "", "run name"},
    {"seed", FieldType::Int, "1", "seed"},
    {"train", FieldType::Section, "", "training", &kToySection},
}};

void register_toy() {
  register_stage({"toy", "a stage for tests", &kToy, [](RunContext&) { return 0; }});
}

std::string write(const test::TempDir& dir, const std::string& name, const std::string& text) {
  std::string path = dir.file(name);
  std::ofstream(path) << text;
  return path;
}

std::string load_error(const std::string& path, std::vector<std::string> overrides = {}) {
  try {
    Recipe::load(path, overrides);
  } catch (const RecipeError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Recipe, LoadsValidatesAndReadsFields) {
  register_toy();
  test::TempDir dir;
  std::string path = write(dir, "ok.lua",
                           "return mathrl.toy {\n  name = 'demo',\n  train = { lr = function(step) return 0.5 / (step + 1) end },\n}\n");
  Recipe r = Recipe::load(path, {"train.steps=5"});
  EXPECT_EQ(r.stage().name, "toy");
  EXPECT_EQ(r.string("name"), "demo");
  EXPECT_EQ(r.integer("train.steps"), 5);
  EXPECT_EQ(r.integer("seed"), 1);
  EXPECT_DOUBLE_EQ(r.number_at("train.lr", 4), 0.1);
  EXPECT_NE(r.resolved().find("steps = 5"), std::string::npos) << r.resolved();
}

TEST(Recipe, SyntaxErrorNamesFileAndLine) {
  register_toy();
  test::TempDir dir;
  std::string path = write(dir, "syntax.lua", "return mathrl.toy {\n  name = 'x'\n  seed = 2,\n}\n");
  std::string err = load_error(path);
  EXPECT_NE(err.find("syntax.lua:3:"), std::string::npos) << err;
}

TEST(Recipe, RuntimeErrorNamesFileAndLineWithTraceback) {
  register_toy();
  test::TempDir dir;
  std::string path = write(dir, "runtime.lua", "local x = nil\nlocal y = x.field\nreturn mathrl.toy {}\n");
  std::string err = load_error(path);
  EXPECT_NE(err.find("runtime.lua:2: attempt to index a nil value"), std::string::npos) << err;
  EXPECT_NE(err.find("stack traceback"), std::string::npos) << err;
}

TEST(Recipe, MisspelledFieldNamesFileLineAndSuggestion) {
  register_toy();
  test::TempDir dir;
  std::string path = write(dir, "typo.lua", "return mathrl.toy {\n  train = { setps = 3 },\n}\n");
  std::string err = load_error(path);
  EXPECT_NE(err.find("typo.lua:1:"), std::string::npos) << err;
  EXPECT_NE(err.find("unknown field 'train.setps' (did you mean 'train.steps'?)"), std::string::npos) << err;
  err = load_error(write(dir, "ok.lua", "return mathrl.toy {}"), {"train.stesp=4"});
  EXPECT_NE(err.find("did you mean 'train.steps'?"), std::string::npos) << err;
}

TEST(Recipe, MustReturnAStageTable) {
  register_toy();
  test::TempDir dir;
  EXPECT_NE(load_error(write(dir, "plain.lua", "return { name = 'x' }")).find("must return a stage table"), std::string::npos);
  EXPECT_NE(load_error(dir.file("absent.lua")).find("no such recipe file"), std::string::npos);
  std::string err = load_error(write(dir, "arg.lua", "return mathrl.toy('x')"));
  EXPECT_NE(err.find("bad argument #1 to 'mathrl.toy' (table expected, got string)"), std::string::npos) << err;
}

TEST(Recipe, RequireFindsModulesBesideTheRecipe) {
  register_toy();
  test::TempDir dir;
  write(dir, "common_settings.lua", "return { steps = 7 }");
  Recipe r = Recipe::load(write(dir, "main.lua", "local c = require 'common_settings'\nreturn mathrl.toy { train = { steps = c.steps } }"), {});
  EXPECT_EQ(r.integer("train.steps"), 7);
}
