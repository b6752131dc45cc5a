#include "report/report_module.h"

#include "common/error.h"
#include "common/strings.h"
#include "lua_host.h"
#include "report/run_report.h"

namespace mathrl::lua {

namespace {

// mathrl.report.write(run_dir [, {title = "..."}])
int write(lua_State* L) {
  const char* fname = "mathrl.report.write";
  std::string dir = arg_string(L, 1, fname);
  report::ReportOptions options;
  if (!lua_isnoneornil(L, 2)) {
    arg_table(L, 2, fname);
    lua_pushnil(L);
    while (lua_next(L, 2)) {
      std::string key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
      if (key != "title") arg_error(L, 2, fname, str("unknown option '", key, "'", did_you_mean(key, {"title"})));
      if (lua_type(L, -1) != LUA_TSTRING) arg_error(L, 2, fname, str("title: string expected, got ", type_name_at(L, -1)));
      options.title = lua_tostring(L, -1);
      lua_pop(L, 1);
    }
  }
  std::string path = report::write_run_report(dir, options);
  lua_pushstring(L, path.c_str());
  return 1;
}

const luaL_Reg functions[] = {
    {"write", trampoline<write>},
    {nullptr, nullptr},
};

}  // namespace

int open_report_module(lua_State* L) {
  luaL_newlib(L, functions);
  return 1;
}

}  // namespace mathrl::lua
