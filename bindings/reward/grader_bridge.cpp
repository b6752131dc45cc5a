#include "reward/grader_bridge.h"

#include "common/error.h"
#include "lua_host.h"
#include "reward/grader.h"

namespace mathrl::reward_lua {

namespace {

const GraderFns& fns_of(lua_State* L) {
  return *static_cast<const GraderFns*>(lua_touserdata(L, lua_upvalueindex(1)));
}

int grader_equal(lua_State* L) {
  std::string pred = lua::arg_string(L, 1, "mathrl_grader.equal");
  std::string gold = lua::arg_string(L, 2, "mathrl_grader.equal");
  lua_pushboolean(L, fns_of(L).equal(pred, gold));
  return 1;
}

// Optional trailing boolean: accept the last number when no answer marker is found (default true).
bool fallback_arg(lua_State* L, int arg) { return lua_isnoneornil(L, arg) || lua_toboolean(L, arg); }

int grader_extract(lua_State* L) {
  std::string text = lua::arg_string(L, 1, "mathrl_grader.extract");
  auto answer = fns_of(L).extract(text, fallback_arg(L, 2));
  if (answer) lua_pushlstring(L, answer->data(), answer->size());
  else lua_pushnil(L);
  return 1;
}

int grader_grade(lua_State* L) {
  std::string output = lua::arg_string(L, 1, "mathrl_grader.grade");
  std::string gold = lua::arg_string(L, 2, "mathrl_grader.grade");
  bool fallback = fallback_arg(L, 3);
  const GraderFns& g = fns_of(L);
  bool ok = false;
  if (g.grade) {
    ok = g.grade(output, gold, fallback);
  } else if (auto pred = g.extract(output, fallback)) {
    ok = g.equal(*pred, gold);
  }
  lua_pushboolean(L, ok);
  return 1;
}

const luaL_Reg kGraderFunctions[] = {
    {"equal", lua::trampoline<grader_equal>},
    {"extract", lua::trampoline<grader_extract>},
    {"grade", lua::trampoline<grader_grade>},
    {nullptr, nullptr},
};

}  // namespace

GraderFns default_grader() {
  GraderFns g;
  g.extract = [](std::string_view text, bool fallback) {
    ExtractOptions o;
    o.last_number_fallback = fallback;
    return extract_answer(text, o);
  };
  g.equal = [](std::string_view pred, std::string_view gold) {
    auto answer = gold_answer(gold);
    return answer && math_equal(pred, *answer);
  };
  g.grade = [](std::string_view output, std::string_view gold, bool fallback) {
    ExtractOptions o;
    o.last_number_fallback = fallback;
    return grade(output, gold, o).equal;
  };
  return g;
}

void open_grader_module(lua_State* L, const GraderFns* fns) {
  MATHRL_CHECK(fns && fns->equal && fns->extract, "grader functions missing");
  lua_createtable(L, 0, 3);
  lua_pushlightuserdata(L, const_cast<GraderFns*>(fns));
  luaL_setfuncs(L, kGraderFunctions, 1);
  lua_setglobal(L, "mathrl_grader");
}

}  // namespace mathrl::reward_lua
