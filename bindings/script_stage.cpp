#include "script_stage.h"

#include <map>

#include "common/error.h"
#include "common/log.h"

namespace mathrl::lua {

namespace {

Schema make_script_schema() {
  Schema s{"script", common_stage_fields("script")};
  s.fields.insert(s.fields.end(), {
    {"main", FieldType::Function, "", "function(run): the script; run.log(msg), run.metric(step, {k = v}), run.dir", nullptr, {}, true},
    {"params", FieldType::Table, "{}", "free-form settings the script reads (overridable with --set params.x=...)"},
  });
  return s;
}
const Schema kScriptSchema = make_script_schema();

RunContext* context_of(lua_State* L) {
  return static_cast<RunContext*>(lua_touserdata(L, lua_upvalueindex(1)));
}

// run.log(msg)
int run_log(lua_State* L) {
  context_of(L)->log.info(arg_string(L, 1, "run.log"));
  return 0;
}

// run.metric(step, {name = number, ...})
int run_metric(lua_State* L) {
  long long step = arg_integer(L, 1, "run.metric");
  arg_table(L, 2, "run.metric");
  std::map<std::string, double> values;
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TNUMBER)
      arg_error(L, 2, "run.metric", "expected a table of name = number");
    values[lua_tostring(L, -2)] = lua_tonumber(L, -1);
    lua_pop(L, 1);
  }
  RunContext* ctx = context_of(L);
  auto* metrics = static_cast<MetricsWriter*>(lua_touserdata(L, lua_upvalueindex(2)));
  metrics->write(step, values);
  (void)ctx;
  return 0;
}

int run_script(RunContext& ctx) {
  lua_State* L = ctx.recipe.L();
  MetricsWriter metrics;
  metrics.open(ctx.run.rank_file("metrics.jsonl"), false);
  // math.random in the recipe state follows the recipe's seed.
  lua_getglobal(L, "math");
  lua_getfield(L, -1, "randomseed");
  lua_pushinteger(L, ctx.recipe.integer("seed"));
  lua_call(L, 1, 0);
  lua_pop(L, 1);

  ctx.recipe.push("main");
  lua_newtable(L);  // the `run` table
  static const luaL_Reg run_functions[] = {
      {"log", trampoline<run_log>},
      {"metric", trampoline<run_metric>},
      {nullptr, nullptr},
  };
  lua_pushlightuserdata(L, &ctx);
  lua_pushlightuserdata(L, &metrics);
  luaL_setfuncs(L, run_functions, 2);
  lua_pushstring(L, ctx.run.path().c_str());
  lua_setfield(L, -2, "dir");
  ctx.recipe.push("params");
  lua_setfield(L, -2, "params");
  protected_call(L, 1, 1, "script main");
  int status = lua_isinteger(L, -1) ? static_cast<int>(lua_tointeger(L, -1)) : 0;
  lua_pop(L, 1);
  return status;
}

}  // namespace

StageSpec script_stage() { return {"script", "run a Lua function with the runtime's modules", &kScriptSchema, run_script}; }

}  // namespace mathrl::lua
