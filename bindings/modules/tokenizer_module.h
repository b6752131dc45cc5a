// mathrl.tokenizer: load, encode/decode and train tokenizers from recipes.
#pragma once
#include <lua.hpp>

namespace mathrl::lua {
int open_tokenizer_module(lua_State* L);
}
