// mathrl.tokenizer: load, encode/decode and train tokenizers from recipes.
#pragma once
#include <lua.hpp>

namespace mathrl {
class Tokenizer;
}

namespace mathrl::lua {
int open_tokenizer_module(lua_State* L);
// The tokenizer held by a mathrl.tokenizer userdata at `idx`, or nullptr when the value is not one.
Tokenizer* test_tokenizer(lua_State* L, int idx);
}
