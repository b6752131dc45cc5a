#include "cli/run_cli.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "cli/stages.h"
#include "common/error.h"
#include "common/log.h"
#include "common/strings.h"
#include "recipe.h"

namespace mathrl::cli {

int run_recipe(const Args& args) {
  register_builtin_stages();
  const std::string& path = args.positional().at(0);
  std::vector<std::string> overrides = args.list("set");
  // --seed / --device are shorthands for --set seed=... / --set device=... (every stage has both).
  if (args.has("seed")) overrides.push_back("seed=" + args.str("seed"));
  if (args.has("device")) overrides.push_back("device=" + args.str("device"));
  lua::Recipe recipe = lua::Recipe::load(path, overrides);
  if (args.flag("check")) {
    std::fputs(recipe.resolved().c_str(), stdout);
    return 0;
  }
  std::string name = recipe.has("name") ? recipe.string("name") : recipe.stage().name;
  // Ranks other than 0 (env:// rendezvous) share rank 0's directory with per-rank log files.
  const char* rank_env = std::getenv("RANK");
  int rank = rank_env ? std::atoi(rank_env) : 0;
  RunDir run = RunDir::create(args.str("runs-root"), name, args.str_or("out", ""), rank);
  Logger log;
  log.open_file(run.rank_file("log.txt"));
  if (rank == 0) {
    write_file_atomic(run.file("recipe.resolved.lua"), recipe.resolved());
    std::error_code ec;
    std::filesystem::copy_file(path, run.file("recipe.lua"), std::filesystem::copy_options::overwrite_existing, ec);
  }
  log.info(str("run ", name, " (stage ", recipe.stage().name, ") in ", run.path()));
  lua::RunContext ctx{recipe, run, log, args.str_or("resume", "")};
  int status = recipe.stage().run(ctx);
  log.info(str("run finished with status ", status, "; outputs in ", run.path()));
  return status;
}

}  // namespace mathrl::cli
