// The `mathrl` Lua module seen by recipes: one constructor per registered stage plus helpers.
#include <cstring>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/version.h"
#include "recipe.h"

namespace mathrl::lua {

namespace {

std::vector<std::pair<std::string, lua_CFunction>>& submodules() {
  static std::vector<std::pair<std::string, lua_CFunction>> list;
  return list;
}

// mathrl.<stage>{...}: validates the table against the stage's schema and tags it.
int stage_constructor(lua_State* L) {
  const char* name = lua_tostring(L, lua_upvalueindex(1));
  std::string fname = std::string("mathrl.") + name;
  arg_table(L, 1, fname.c_str());
  if (lua_gettop(L) > 1) arg_error(L, 2, fname.c_str(), "no value expected: call it as " + fname + "{ ... }");
  const StageSpec* spec = find_stage(name);
  MATHRL_CHECK(spec != nullptr);
  luaL_where(L, 1);
  std::string where = lua_tostring(L, -1);
  lua_pop(L, 1);
  validate(L, 1, *spec->schema, "", "");  // the trampoline prefixes file:line
  lua_pushstring(L, name);
  lua_setfield(L, 1, "__stage");
  lua_pushstring(L, where.c_str());
  lua_setfield(L, 1, "__where");
  lua_settop(L, 1);
  return 1;
}

// mathrl.stages(): the names of the registered stages.
int list_stages(lua_State* L) {
  lua_newtable(L);
  int i = 1;
  for (const auto& s : registered_stages()) {
    lua_pushstring(L, s.name.c_str());
    lua_rawseti(L, -2, i++);
  }
  return 1;
}

const luaL_Reg mathrl_functions[] = {
    {"stages", trampoline<list_stages>},
    {nullptr, nullptr},
};

int open_module(lua_State* L) {
  luaL_newlib(L, mathrl_functions);
  lua_pushstring(L, version_string().c_str());
  lua_setfield(L, -2, "version");
  for (const auto& s : registered_stages()) {
    lua_pushstring(L, s.name.c_str());
    lua_pushcclosure(L, trampoline<stage_constructor>, 1);
    lua_setfield(L, -2, s.name.c_str());
  }
  for (const auto& [name, open] : submodules()) {
    lua_pushcfunction(L, open);
    lua_call(L, 0, 1);
    lua_setfield(L, -2, name.c_str());
  }
  return 1;
}

}  // namespace

void register_submodule(const std::string& name, lua_CFunction open) {
  for (auto& entry : submodules())
    if (entry.first == name) {
      entry.second = open;
      return;
    }
  submodules().emplace_back(name, open);
}

void open_mathrl_module(lua_State* L) {
  luaL_requiref(L, "mathrl", open_module, 1);  // also sets the global `mathrl`
  lua_pop(L, 1);
}

}  // namespace mathrl::lua
