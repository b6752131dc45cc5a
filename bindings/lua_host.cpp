#include "lua_host.h"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "common/error.h"

namespace mathrl::lua {

int traceback_handler(lua_State* L) {
  const char* msg = lua_tostring(L, 1);
  if (msg == nullptr) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

void protected_call(lua_State* L, int nargs, int nresults, const std::string& what) {
  int base = lua_gettop(L) - nargs;  // index of the function
  lua_pushcfunction(L, traceback_handler);
  lua_insert(L, base);
  int status = lua_pcall(L, nargs, nresults, base);
  lua_remove(L, base);
  if (status != LUA_OK) {
    std::string msg = lua_tostring(L, -1) ? lua_tostring(L, -1) : "(non-string error)";
    lua_pop(L, 1);
    throw RecipeError(what.empty() ? msg : str(what, ": ", msg));
  }
}

std::string type_name_at(lua_State* L, int idx) { return luaL_typename(L, idx); }

[[noreturn]] void arg_error(lua_State* L, int arg, const char* fname, const std::string& msg) {
  (void)L;
  throw UsageError(str("bad argument #", arg, " to '", fname, "' (", msg, ")"));
}

static void expect_type(lua_State* L, int arg, const char* fname, int type) {
  if (lua_type(L, arg) != type)
    arg_error(L, arg, fname, str(lua_typename(L, type), " expected, got ", lua_isnone(L, arg) ? "no value" : type_name_at(L, arg)));
}

std::string arg_string(lua_State* L, int arg, const char* fname) {
  expect_type(L, arg, fname, LUA_TSTRING);
  size_t len = 0;
  const char* s = lua_tolstring(L, arg, &len);
  return std::string(s, len);
}

double arg_number(lua_State* L, int arg, const char* fname) {
  expect_type(L, arg, fname, LUA_TNUMBER);
  return lua_tonumber(L, arg);
}

long long arg_integer(lua_State* L, int arg, const char* fname) {
  expect_type(L, arg, fname, LUA_TNUMBER);
  int isnum = 0;
  lua_Integer v = lua_tointegerx(L, arg, &isnum);
  if (!isnum) arg_error(L, arg, fname, "number has no integer representation");
  return v;
}

void arg_table(lua_State* L, int arg, const char* fname) { expect_type(L, arg, fname, LUA_TTABLE); }

void arg_function(lua_State* L, int arg, const char* fname) { expect_type(L, arg, fname, LUA_TFUNCTION); }

std::string opt_string(lua_State* L, int arg, const char* fname, const std::string& fallback) {
  return lua_isnoneornil(L, arg) ? fallback : arg_string(L, arg, fname);
}

namespace detail {
void describe_exception(lua_State* L, char* buf, size_t size) {
  // Prefix with the Lua position of the caller, as luaL_error does ("recipes/x.lua:7: ...").
  luaL_where(L, 1);
  std::string where = lua_tostring(L, -1);
  lua_pop(L, 1);
  try {
    throw;
  } catch (const std::exception& e) {
    std::snprintf(buf, size, "%s%s", where.c_str(), e.what());
  } catch (...) {
    std::snprintf(buf, size, "%sunknown C++ exception", where.c_str());
  }
}
}  // namespace detail

std::string describe_value(lua_State* L, int idx, int depth) {
  idx = lua_absindex(L, idx);
  switch (lua_type(L, idx)) {
    case LUA_TNIL: return "nil";
    case LUA_TBOOLEAN: return lua_toboolean(L, idx) ? "true" : "false";
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) return std::to_string(lua_tointeger(L, idx));
      else {
        char b[64];
        std::snprintf(b, sizeof b, "%.17g", lua_tonumber(L, idx));
        return b;
      }
    case LUA_TSTRING: {
      std::string out = "\"";
      size_t n;
      const char* s = lua_tolstring(L, idx, &n);
      for (size_t i = 0; i < n; ++i) {
        char c = s[i];
        if (c == '"' || c == '\\') out += '\\', out += c;
        else if (c == '\n') out += "\\n";
        else out += c;
      }
      return out + "\"";
    }
    case LUA_TFUNCTION: {
      lua_Debug ar;
      lua_pushvalue(L, idx);
      lua_getinfo(L, ">S", &ar);
      if (ar.what && std::strcmp(ar.what, "C") == 0) return "<C function>";
      return str("<function ", ar.short_src, ":", ar.linedefined, ">");
    }
    case LUA_TTABLE: {
      if (depth > 8) return "{...}";
      std::string pad(2 * (depth + 1), ' ');
      std::string out = "{\n";
      // Sorted keys keep resolved-recipe files diffable.
      std::vector<std::pair<std::string, std::string>> items;
      lua_pushnil(L);
      while (lua_next(L, idx)) {
        std::string key;
        if (lua_type(L, -2) == LUA_TSTRING) key = lua_tostring(L, -2);
        else {
          lua_pushvalue(L, -2);
          key = "[" + describe_value(L, -1, depth + 1) + "]";
          lua_pop(L, 1);
        }
        items.emplace_back(key, describe_value(L, -1, depth + 1));
        lua_pop(L, 1);
      }
      std::sort(items.begin(), items.end());
      for (auto& [k, v] : items) out += pad + k + " = " + v + ",\n";
      return out + std::string(2 * depth, ' ') + "}";
    }
    default: return str("<", type_name_at(L, idx), ">");
  }
}

}  // namespace mathrl::lua
