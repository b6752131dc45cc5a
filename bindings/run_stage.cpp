#include "run_stage.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "common/error.h"
#include "common/log.h"
#include "common/strings.h"
#include "lua_host.h"
#include "recipe.h"

namespace mathrl::lua {

SubRunResult run_recipe_file(const std::string& path, const std::string& out, const std::vector<std::string>& overrides) {
  Recipe recipe = Recipe::load(path, overrides);
  std::string name = recipe.has("name") ? recipe.string("name") : recipe.stage().name;
  const char* rank_env = std::getenv("RANK");
  int rank = rank_env ? std::atoi(rank_env) : 0;
  RunDir run = RunDir::create("runs", name, out, rank);
  Logger log;
  log.open_file(run.rank_file("log.txt"));
  if (rank == 0) {
    write_file_atomic(run.file("recipe.resolved.lua"), recipe.resolved());
    std::error_code ec;
    std::filesystem::copy_file(path, run.file("recipe.lua"), std::filesystem::copy_options::overwrite_existing, ec);
  }
  log.info(str("sub-run ", name, " (stage ", recipe.stage().name, ") in ", run.path()));
  RunContext ctx{recipe, run, log, ""};
  SubRunResult result{recipe.stage().run(ctx), run.path()};
  log.info(str("sub-run finished with status ", result.status));
  return result;
}

namespace {

// {"a.b=1", ...} and/or {["a.b"] = 1, ...} -> "a.b=1" assignments.
std::vector<std::string> overrides_of(lua_State* L, int idx, const char* fname) {
  std::vector<std::string> out;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    std::string assignment;
    if (lua_type(L, -2) == LUA_TNUMBER && lua_type(L, -1) == LUA_TSTRING) {
      assignment = lua_tostring(L, -1);
    } else if (lua_type(L, -2) == LUA_TSTRING) {
      std::string key = lua_tostring(L, -2);
      switch (lua_type(L, -1)) {
        case LUA_TBOOLEAN: assignment = key + "=" + (lua_toboolean(L, -1) ? "true" : "false"); break;
        case LUA_TNUMBER:
        case LUA_TSTRING: assignment = key + "=" + lua_tostring(L, -1); break;  // lua_tostring formats numbers as Lua does
        default: arg_error(L, 2, fname, str("set.", key, ": a string, number or boolean expected, got ", type_name_at(L, -1)));
      }
    } else {
      arg_error(L, 2, fname, "set: expected \"key=value\" strings or key = value pairs");
    }
    out.push_back(assignment);
    lua_pop(L, 1);
  }
  return out;
}

// mathrl.run_recipe(path [, {out = DIR, set = {...}}]) -> status, dir
int run_recipe(lua_State* L) {
  const char* fname = "mathrl.run_recipe";
  std::string path = arg_string(L, 1, fname);
  std::string out;
  std::vector<std::string> overrides;
  if (!lua_isnoneornil(L, 2)) {
    arg_table(L, 2, fname);
    lua_getfield(L, 2, "out");
    if (!lua_isnil(L, -1)) {
      if (lua_type(L, -1) != LUA_TSTRING) arg_error(L, 2, fname, str("out: string expected, got ", type_name_at(L, -1)));
      out = lua_tostring(L, -1);
    }
    lua_pop(L, 1);
    lua_getfield(L, 2, "set");
    if (!lua_isnil(L, -1)) {
      if (!lua_istable(L, -1)) arg_error(L, 2, fname, str("set: table expected, got ", type_name_at(L, -1)));
      overrides = overrides_of(L, lua_gettop(L), fname);
    }
    lua_pop(L, 1);
    lua_pushnil(L);
    while (lua_next(L, 2)) {
      std::string key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
      if (key != "out" && key != "set") arg_error(L, 2, fname, str("unknown option '", key, "'", did_you_mean(key, {"out", "set"})));
      lua_pop(L, 1);
    }
  }
  SubRunResult r = run_recipe_file(path, out, overrides);
  lua_pushinteger(L, r.status);
  lua_pushstring(L, r.dir.c_str());
  return 2;
}

}  // namespace

int open_run_recipe(lua_State* L) {
  lua_pushcfunction(L, trampoline<run_recipe>);
  return 1;
}

}  // namespace mathrl::lua
