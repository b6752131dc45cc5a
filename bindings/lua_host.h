// The C++ <-> Lua boundary. Two rules keep it safe:
//  * C++ -> Lua: every call goes through protected_call(), which runs with a traceback handler and
//    turns a Lua error into a C++ exception (RecipeError) carrying "file:line: message" + traceback.
//  * Lua -> C++: every C function is wrapped by trampoline<F>. F may throw; the trampoline catches,
//    copies the message into a plain buffer, and raises the Lua error only after every C++ object of
//    the failed call is destroyed (lua_error longjmps; it must never skip a destructor).
//    Inside F, check arguments with the arg_* helpers below, which throw instead of longjmp-ing.
#pragma once
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <string>

#include <lua.hpp>

namespace mathrl::lua {

struct StateDeleter {
  void operator()(lua_State* L) const { lua_close(L); }
};
using StatePtr = std::unique_ptr<lua_State, StateDeleter>;

// Calls the function below `nargs` arguments on the stack. On error throws RecipeError whose message
// is Lua's ("recipes/x.lua:12: attempt to ...") followed by the traceback. `what` names the call in
// the message ("reward 'format'", "recipe").
void protected_call(lua_State* L, int nargs, int nresults, const std::string& what);

// The message handler protected_call installs; exposed for callers that need lua_pcall themselves.
int traceback_handler(lua_State* L);

// Lua-style argument errors, thrown as C++ exceptions: "bad argument #2 to 'reward.add' (number expected, got string)".
[[noreturn]] void arg_error(lua_State* L, int arg, const char* fname, const std::string& msg);
std::string arg_string(lua_State* L, int arg, const char* fname);
double arg_number(lua_State* L, int arg, const char* fname);
long long arg_integer(lua_State* L, int arg, const char* fname);
void arg_table(lua_State* L, int arg, const char* fname);
void arg_function(lua_State* L, int arg, const char* fname);
std::string opt_string(lua_State* L, int arg, const char* fname, const std::string& fallback);

namespace detail {
// Formats the exception into buf; returns the length written.
void describe_exception(lua_State* L, char* buf, size_t size);
}  // namespace detail

// Wraps a C++ Lua function so exceptions become Lua errors without longjmp-ing over live objects.
template <lua_CFunction F>
int trampoline(lua_State* L) {
  char message[2048];
  try {
    return F(L);
  } catch (...) {
    detail::describe_exception(L, message, sizeof message);
  }
  // The exception object and all of F's locals are gone here; only a plain char array remains.
  lua_pushstring(L, message);
  return lua_error(L);
}

// Value helpers.
std::string type_name_at(lua_State* L, int idx);
// Renders a Lua value for logs and resolved-recipe files (tables recursively, functions by origin).
std::string describe_value(lua_State* L, int idx, int depth = 0);

}  // namespace mathrl::lua
