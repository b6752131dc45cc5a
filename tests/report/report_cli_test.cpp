// `mathrl report`, mathrl.report.write and mathrl.run_recipe through the binary.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "common/error.h"
#include "common/strings.h"
#include "support/test_support.h"

namespace mathrl {
namespace {

namespace fs = std::filesystem;

void write(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << text;
}

TEST(ReportCli, WritesReportForARunDirectory) {
  test::TempDir dir;
  write(dir.file("run/metrics.jsonl"), "{\"step\":1,\"loss\":2}\n{\"step\":2,\"loss\":1}\n");
  auto r = test::run_mathrl({"report", dir.file("run"), "--title", "My run"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(std::string(trim(r.out)), dir.file("run") + "/report.md");
  std::string md = read_file(dir.file("run/report.md"));
  EXPECT_NE(md.find("# My run"), std::string::npos);
  EXPECT_NE(md.find("| loss | 2 | 1 | 2 | 1 | 1 | 2 |"), std::string::npos) << md;
  EXPECT_TRUE(fs::exists(dir.file("run/plots/run_loss.svg")));

  auto missing = test::run_mathrl({"report", dir.file("nowhere")});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("no such run directory"), std::string::npos) << missing.err;
  auto usage = test::run_mathrl({"report"});
  EXPECT_EQ(usage.exit_code, 2);
}

TEST(ReportCli, ScriptRunsAnotherRecipeAndWritesTheReport) {
  test::TempDir dir;
  write(dir.file("child.lua"), R"LUA(return mathrl.script { name = "child", params = { n = 2 }, main = function(run)
  for i = 1, run.params.n do run.metric(i, { reward = i / 10 }) end
  return run.params.n == 4 and 0 or 3
end })LUA");
  write(dir.file("parent.lua"), str(R"LUA(return mathrl.script { name = "parent", main = function(run)
  local status, sub = mathrl.run_recipe(")LUA", dir.file("child.lua"), R"LUA(", { out = run.dir .. "/rl", set = { "params.n=4", seed = 2 } })
  assert(status == 0 and sub == run.dir .. "/rl", "status " .. status)
  local ok, err = pcall(mathrl.run_recipe, "x.lua", { outt = "y" })
  assert(not ok and err:find("unknown option 'outt' %(did you mean 'out'%?%)"), err)
  ok, err = pcall(mathrl.report.write, run.dir, { titel = "x" })
  assert(not ok and err:find("did you mean 'title'"), err)
  print(mathrl.report.write(run.dir, { title = "Chained" }))
end })LUA"));
  auto r = test::run_mathrl({"run", dir.file("parent.lua"), "--out", dir.file("run")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string child_metrics = read_file(dir.file("run/rl/metrics.jsonl"));
  EXPECT_NE(child_metrics.find("{\"step\":4,\"reward\":0.4}"), std::string::npos) << child_metrics;
  EXPECT_TRUE(fs::exists(dir.file("run/rl/recipe.resolved.lua")));
  EXPECT_NE(read_file(dir.file("run/rl/recipe.resolved.lua")).find("seed = 2"), std::string::npos);
  std::string md = read_file(dir.file("run/report.md"));
  EXPECT_NE(md.find("# Chained"), std::string::npos);
  EXPECT_NE(md.find("## Metrics: rl"), std::string::npos);
  EXPECT_TRUE(fs::exists(dir.file("run/plots/rl_reward.svg")));
  bool events = false;
  for (const auto& e : fs::directory_iterator(dir.file("run/rl")))
    events |= e.path().filename().string().rfind("events.out.tfevents.", 0) == 0;
  EXPECT_TRUE(events);
}

TEST(ReportCli, SubRunErrorsStopTheScript) {
  test::TempDir dir;
  write(dir.file("bad.lua"), "return mathrl.script { name = 'bad', mian = function() end }\n");
  write(dir.file("parent.lua"), str("return mathrl.script { main = function(run) mathrl.run_recipe('", dir.file("bad.lua"),
                                    "', { out = run.dir .. '/b' }) end }\n"));
  auto r = test::run_mathrl({"run", dir.file("parent.lua"), "--out", dir.file("run")});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("mian"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace mathrl
