// JSON values (dataset records) as Lua values: objects and arrays become tables, null becomes nil.
#pragma once
#include <lua.hpp>
#include <rapidjson/document.h>

namespace mathrl::lua {

// Pushes `value`. Parts nested deeper than `max_depth` arrive as nil rather than recursing further.
// Raises no C++ exception (safe inside a sandbox's protected call); running out of Lua stack or
// memory raises a Lua error, as any table creation can.
void push_json(lua_State* L, const rapidjson::Value& value, int max_depth = 64);

}  // namespace mathrl::lua
