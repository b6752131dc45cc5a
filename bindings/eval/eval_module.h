// mathrl.eval: benchmark evaluation from recipes (an eval subset every N training steps), plus the
// pass@k estimator and the native grader as plain functions.
#pragma once
#include <lua.hpp>

namespace mathrl::lua {
int open_eval_module(lua_State* L);
}
