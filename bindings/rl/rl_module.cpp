#include "rl/rl_module.h"

#include "common/error.h"
#include "common/strings.h"
#include "lua_host.h"
#include "rl/advantages.h"
#include "rl/rl_stage.h"
#include "schema.h"

namespace mathrl::lua {

namespace {

// Optional number field of the options table at `arg`.
double opt_number(lua_State* L, int arg, const char* key, double fallback, const char* fname) {
  if (lua_isnoneornil(L, arg)) return fallback;
  arg_table(L, arg, fname);
  lua_getfield(L, arg, key);
  double v = fallback;
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TNUMBER) {
      std::string got = luaL_typename(L, -1);
      lua_pop(L, 1);
      arg_error(L, arg, fname, str("field '", key, "' must be a number, got ", got));
    }
    v = lua_tonumber(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

bool opt_bool(lua_State* L, int arg, const char* key, bool fallback, const char* fname) {
  if (lua_isnoneornil(L, arg)) return fallback;
  arg_table(L, arg, fname);
  lua_getfield(L, arg, key);
  bool v = lua_isnil(L, -1) ? fallback : lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

void push_lists(lua_State* L, const std::vector<std::vector<double>>& v) {
  lua_createtable(L, static_cast<int>(v.size()), 0);
  for (size_t i = 0; i < v.size(); ++i) {
    push_numbers(L, v[i]);
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
}

int grpo(lua_State* L) {
  std::vector<double> r = number_list(L, 1, "mathrl.rl.grpo");
  rl::GroupAdvantageOptions o;
  o.scale = opt_bool(L, 2, "scale", true, "mathrl.rl.grpo");
  o.epsilon = opt_number(L, 2, "epsilon", o.epsilon, "mathrl.rl.grpo");
  push_numbers(L, rl::grpo_advantages(r, o));
  return 1;
}

int rloo(lua_State* L) {
  push_numbers(L, rl::rloo_advantages(number_list(L, 1, "mathrl.rl.rloo")));
  return 1;
}

int reinforce_pp(lua_State* L) {
  auto groups = number_lists(L, 1, "mathrl.rl.reinforce_pp");
  push_lists(L, rl::reinforce_pp_baseline_advantages(groups, opt_number(L, 2, "epsilon", 1e-4, "mathrl.rl.reinforce_pp")));
  return 1;
}

int process(lua_State* L) {
  auto rewards = number_lists(L, 1, "mathrl.rl.process");
  auto ends_d = number_lists(L, 2, "mathrl.rl.process");
  auto lengths_d = number_list(L, 3, "mathrl.rl.process");
  double eps = opt_number(L, 4, "epsilon", 1e-4, "mathrl.rl.process");
  std::vector<std::vector<int>> ends;
  for (const auto& e : ends_d) ends.emplace_back(e.begin(), e.end());
  std::vector<int> lengths(lengths_d.begin(), lengths_d.end());
  push_lists(L, rl::process_supervision_advantages(rewards, ends, lengths, eps));
  return 1;
}

int gae(lua_State* L) {
  auto rewards = number_list(L, 1, "mathrl.rl.gae");
  auto values = number_list(L, 2, "mathrl.rl.gae");
  double gamma = opt_number(L, 3, "gamma", 1.0, "mathrl.rl.gae");
  double lambda = opt_number(L, 3, "lambda", 0.95, "mathrl.rl.gae");
  rl::Gae g = rl::gae(rewards, values, gamma, lambda);
  push_numbers(L, g.advantages);
  push_numbers(L, g.returns);
  return 2;
}

int names(lua_State* L) {
  auto n = rl::advantage_names();
  lua_createtable(L, static_cast<int>(n.size()), 0);
  for (size_t i = 0; i < n.size(); ++i) {
    lua_pushstring(L, n[i].c_str());
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  return 1;
}

// mathrl.rl{...}: the module table is also the rl stage's constructor (the stage and the module
// share the name), doing what every mathrl.<stage> constructor does: validate and tag the table.
int construct_stage(lua_State* L) {
  lua_remove(L, 1);  // the module table (__call's self)
  arg_table(L, 1, "mathrl.rl");
  if (lua_gettop(L) > 1) arg_error(L, 2, "mathrl.rl", "no value expected: call it as mathrl.rl{ ... }");
  luaL_where(L, 1);
  std::string where = lua_tostring(L, -1);
  lua_pop(L, 1);
  validate(L, 1, rl_schema(), "", "");
  lua_pushstring(L, "rl");
  lua_setfield(L, 1, "__stage");
  lua_pushstring(L, where.c_str());
  lua_setfield(L, 1, "__where");
  lua_settop(L, 1);
  return 1;
}

const luaL_Reg functions[] = {
    {"grpo", trampoline<grpo>},
    {"rloo", trampoline<rloo>},
    {"reinforce_pp", trampoline<reinforce_pp>},
    {"process", trampoline<process>},
    {"gae", trampoline<gae>},
    {"names", trampoline<names>},
    {nullptr, nullptr},
};

}  // namespace

std::vector<double> number_list(lua_State* L, int arg, const char* fname) {
  arg_table(L, arg, fname);
  std::vector<double> out;
  lua_Integer n = luaL_len(L, arg);
  for (lua_Integer i = 1; i <= n; ++i) {
    lua_rawgeti(L, arg, i);
    if (lua_type(L, -1) != LUA_TNUMBER) {
      std::string got = luaL_typename(L, -1);
      lua_pop(L, 1);
      arg_error(L, arg, fname, str("list of numbers expected, element ", i, " is a ", got));
    }
    out.push_back(lua_tonumber(L, -1));
    lua_pop(L, 1);
  }
  return out;
}

std::vector<std::vector<double>> number_lists(lua_State* L, int arg, const char* fname) {
  arg_table(L, arg, fname);
  arg = lua_absindex(L, arg);
  std::vector<std::vector<double>> out;
  lua_Integer n = luaL_len(L, arg);
  for (lua_Integer i = 1; i <= n; ++i) {
    lua_rawgeti(L, arg, i);
    if (!lua_istable(L, -1)) {
      std::string got = luaL_typename(L, -1);
      lua_pop(L, 1);
      arg_error(L, arg, fname, str("list of number lists expected, element ", i, " is a ", got));
    }
    out.push_back(number_list(L, lua_gettop(L), fname));
    lua_pop(L, 1);
  }
  return out;
}

void push_numbers(lua_State* L, const std::vector<double>& v) {
  lua_createtable(L, static_cast<int>(v.size()), 0);
  for (size_t i = 0; i < v.size(); ++i) {
    lua_pushnumber(L, v[i]);
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
}

int open_rl_module(lua_State* L) {
  luaL_newlib(L, functions);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, trampoline<construct_stage>);
  lua_setfield(L, -2, "__call");
  lua_setmetatable(L, -2);
  return 1;
}

}  // namespace mathrl::lua
