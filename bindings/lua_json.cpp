#include "lua_json.h"

namespace mathrl::lua {

namespace {

void push_at(lua_State* L, const rapidjson::Value& v, int depth_left) {
  if (depth_left < 0) {
    lua_pushnil(L);
    return;
  }
  luaL_checkstack(L, 4, "JSON record nesting");
  switch (v.GetType()) {
    case rapidjson::kNullType: lua_pushnil(L); return;
    case rapidjson::kFalseType: lua_pushboolean(L, 0); return;
    case rapidjson::kTrueType: lua_pushboolean(L, 1); return;
    case rapidjson::kStringType: lua_pushlstring(L, v.GetString(), v.GetStringLength()); return;
    case rapidjson::kNumberType:
      if (v.IsInt64()) lua_pushinteger(L, static_cast<lua_Integer>(v.GetInt64()));
      else lua_pushnumber(L, v.GetDouble());
      return;
    case rapidjson::kArrayType: {
      lua_createtable(L, static_cast<int>(v.Size()), 0);
      lua_Integer i = 1;
      for (const auto& item : v.GetArray()) {
        push_at(L, item, depth_left - 1);
        lua_rawseti(L, -2, i++);  // a null element leaves a hole, as nil does in any Lua sequence
      }
      return;
    }
    case rapidjson::kObjectType: {
      lua_createtable(L, 0, static_cast<int>(v.MemberCount()));
      for (const auto& m : v.GetObject()) {
        lua_pushlstring(L, m.name.GetString(), m.name.GetStringLength());
        push_at(L, m.value, depth_left - 1);
        lua_rawset(L, -3);
      }
      return;
    }
  }
}

}  // namespace

void push_json(lua_State* L, const rapidjson::Value& value, int max_depth) { push_at(L, value, max_depth); }

}  // namespace mathrl::lua
