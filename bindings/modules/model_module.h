// mathrl.model: load, create, inspect, score and save decoders from recipes.
#pragma once
#include <lua.hpp>

namespace mathrl::model {
class Decoder;
}

namespace mathrl::lua {
int open_model_module(lua_State* L);
// The decoder held by a mathrl.model userdata at `idx`, or nullptr when the value is not one.
model::Decoder* test_model(lua_State* L, int idx);
}
