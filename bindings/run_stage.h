// mathrl.run_recipe(path [, {out = DIR, set = {...}}]): runs another recipe file as a sub-run of
// the calling script, so one `mathrl.script` can chain stages (the packaged pipeline). The recipe
// loads in a fresh Lua state, is validated against its stage's schema (overrides applied) and runs
// with its own run directory, log.txt and metrics.jsonl. Returns the stage's status and the directory.
#pragma once
#include <string>
#include <vector>

#include <lua.hpp>

namespace mathrl::lua {

struct SubRunResult {
  int status = 0;
  std::string dir;
};

// The C++ side: what `mathrl run PATH --out OUT --set ...` does, minus the command line.
SubRunResult run_recipe_file(const std::string& path, const std::string& out, const std::vector<std::string>& overrides);

// Pushes the function itself; registered with register_submodule("run_recipe", ...), which stores
// whatever `open` pushes as mathrl.<name>.
int open_run_recipe(lua_State* L);

}  // namespace mathrl::lua
