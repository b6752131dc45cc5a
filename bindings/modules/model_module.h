// mathrl.model: load, create, inspect, score and save decoders from recipes.
#pragma once
#include <lua.hpp>

namespace mathrl::lua {
int open_model_module(lua_State* L);
}
