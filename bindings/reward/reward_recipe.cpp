#include "reward/reward_recipe.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "common/error.h"
#include "common/strings.h"
#include "lua_host.h"

namespace mathrl::reward_lua {

using lua::Field;
using lua::FieldType;
using lua::Schema;

const Schema& reward_entry_schema() {
  static const Schema schema{
      "reward",
      {
          {"name", FieldType::String, "", "name of the reward (its metrics are reward/<name>...)", nullptr, {}, true},
          {"file", FieldType::String, "", "Lua file returning the reward function (watched for hot-swap)"},
          {"code", FieldType::String, "", "inline Lua code returning the reward function"},
          {"builtin", FieldType::String, "", "a reward from recipes/lib/rewards.lua", nullptr,
           {"correct", "format", "length"}},
          {"fn", FieldType::String, "'reward'", "name of the function when the code returns a table or defines globals"},
          {"weight", FieldType::Number, "1.0", "total = sum of weight * value"},
          {"on_error", FieldType::Number, "", "value when the reward fails (default: reward_limits.on_error)"},
          {"options", FieldType::Table, "{}", "options passed to a builtin reward"},
      }};
  return schema;
}

const Schema& reward_limits_schema() {
  static const Schema schema{
      "reward_limits",
      {
          {"instructions", FieldType::Int, "20000000", "Lua instructions per reward call (about 0.1 s)"},
          {"memory_mb", FieldType::Int, "64", "memory cap of each reward sandbox, MiB"},
          {"threads", FieldType::Int, "4", "sandboxes scoring in parallel"},
          {"on_error", FieldType::Number, "0", "value of a reward that errors, times out or runs out of memory"},
          {"trial_samples", FieldType::Int, "8", "a reloaded reward file is first tried on this many recent samples"},
      }};
  return schema;
}

std::vector<Field> reward_recipe_fields() {
  return {
      {"rewards", FieldType::List, "", "reward functions: {name=, file=|code=|builtin=, weight=, fn=, on_error=, options=}"},
      {"reward_limits", FieldType::Section, "", "sandbox limits of the reward functions", &reward_limits_schema()},
  };
}

namespace {

bool is_identifier(const std::string& s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  static const char* kKeywords[] = {"and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if",
                                    "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while"};
  for (const char* k : kKeywords)
    if (s == k) return false;
  return true;
}

std::string quote(const char* s, size_t n) {
  std::string out = "\"";
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 32 || c == 127) {
      char b[8];
      std::snprintf(b, sizeof b, "\\%03d", c);
      out += b;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

long long int_field(lua_State* L, int idx, const char* name, long long min, const std::string& where) {
  lua_getfield(L, idx, name);
  long long v = lua_tointeger(L, -1);
  lua_pop(L, 1);
  if (v < min) throw RecipeError(str(where, "field 'reward_limits.", name, "' must be at least ", min, ", got ", v));
  return v;
}

}  // namespace

std::string to_lua_literal(lua_State* L, int idx, const std::string& what, int depth) {
  idx = lua_absindex(L, idx);
  switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN: return lua_toboolean(L, idx) ? "true" : "false";
    case LUA_TNUMBER: {
      if (lua_isinteger(L, idx)) return std::to_string(lua_tointeger(L, idx));
      double v = lua_tonumber(L, idx);
      if (!std::isfinite(v)) return v != v ? "(0/0)" : (v > 0 ? "math.huge" : "-math.huge");
      char b[64];
      std::snprintf(b, sizeof b, "%.17g", v);
      std::string s = b;
      if (s.find_first_of(".eE") == std::string::npos) s += ".0";
      return s;
    }
    case LUA_TSTRING: {
      size_t n = 0;
      const char* s = lua_tolstring(L, idx, &n);
      return quote(s, n);
    }
    case LUA_TTABLE: {
      if (depth > 16) throw RecipeError(str(what, " is nested too deeply"));
      std::vector<std::pair<std::string, std::string>> items;
      lua_pushnil(L);
      while (lua_next(L, idx)) {
        std::string key;
        if (lua_type(L, -2) == LUA_TSTRING) {
          size_t n = 0;
          const char* k = lua_tolstring(L, -2, &n);
          std::string ks(k, n);
          key = is_identifier(ks) ? ks : "[" + quote(k, n) + "]";
        } else if (lua_type(L, -2) == LUA_TNUMBER) {
          key = "[" + to_lua_literal(L, -2, what, depth + 1) + "]";
        } else {
          std::string t = luaL_typename(L, -2);
          lua_pop(L, 2);
          throw RecipeError(str(what, " has a ", t, " key; only string and number keys can be passed to a reward"));
        }
        std::string value;
        try {
          value = to_lua_literal(L, -1, what, depth + 1);
        } catch (...) {
          lua_pop(L, 2);
          throw;
        }
        items.emplace_back(key, value);
        lua_pop(L, 1);
      }
      std::sort(items.begin(), items.end());
      std::string out = "{";
      for (auto& [k, v] : items) out += k + " = " + v + ", ";
      return out + "}";
    }
    default:
      throw RecipeError(str(what, " holds a ", luaL_typename(L, idx),
                            "; rewards run in a sandbox, so only numbers, strings, booleans and tables can be passed"));
  }
}

RewardConfig reward_config_from_lua(lua_State* L, int idx, const std::string& base_dir, uint64_t seed,
                                    const std::string& where, const std::string& path) {
  idx = lua_absindex(L, idx);
  RewardConfig cfg;
  lua_getfield(L, idx, "reward_limits");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, idx, "reward_limits");
  }
  if (!lua_istable(L, -1)) {
    std::string got = luaL_typename(L, -1);
    lua_pop(L, 1);
    throw RecipeError(str(where, "field '", path, "reward_limits' must be a table, got ", got));
  }
  lua::validate(L, -1, reward_limits_schema(), path + "reward_limits.", where);
  int limits = lua_gettop(L);
  auto& o = cfg.options;
  o.limits.instruction_budget = static_cast<uint64_t>(int_field(L, limits, "instructions", 1000, where));
  o.limits.memory_cap = static_cast<size_t>(int_field(L, limits, "memory_mb", 1, where)) << 20;
  o.limits.seed = seed;
  o.threads = static_cast<size_t>(int_field(L, limits, "threads", 1, where));
  o.trial_samples = static_cast<size_t>(int_field(L, limits, "trial_samples", 0, where));
  lua_getfield(L, limits, "on_error");
  double default_on_error = lua_tonumber(L, -1);
  lua_pop(L, 2);

  std::string dir = base_dir.empty() ? "." : base_dir;
  o.module_dirs = {dir, lua::recipes_lib_dir()};

  lua_getfield(L, idx, "rewards");
  if (!lua_istable(L, -1)) {
    std::string got = luaL_typename(L, -1);
    lua_pop(L, 1);
    throw RecipeError(str(where, "field '", path, "rewards' must be a list of rewards, got ", got));
  }
  int list = lua_gettop(L);
  lua_Integer n = static_cast<lua_Integer>(lua_rawlen(L, list));
  if (n == 0) {
    lua_pop(L, 1);
    throw RecipeError(str(where, "field '", path, "rewards' is empty; give at least one reward"));
  }
  for (lua_Integer i = 1; i <= n; ++i) {
    std::string at = str(path, "rewards[", i, "]");
    lua_rawgeti(L, list, i);
    if (!lua_istable(L, -1)) {
      std::string got = luaL_typename(L, -1);
      lua_pop(L, 2);
      throw RecipeError(str(where, "'", at, "' must be a table such as {name = 'correct', builtin = 'correct'}, got ", got));
    }
    try {
      lua::validate(L, -1, reward_entry_schema(), at + ".", where);
    } catch (...) {
      lua_pop(L, 2);
      throw;
    }
    RewardSpec spec;
    auto get_string = [&](const char* f) {
      lua_getfield(L, -1, f);
      std::string v = lua_isstring(L, -1) ? lua_tostring(L, -1) : "";
      lua_pop(L, 1);
      return v;
    };
    spec.name = get_string("name");
    spec.file = get_string("file");
    spec.code = get_string("code");
    spec.builtin = get_string("builtin");
    spec.fn = get_string("fn");
    lua_getfield(L, -1, "weight");
    spec.weight = lua_tonumber(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, -1, "on_error");
    spec.on_error = lua_isnil(L, -1) ? default_on_error : lua_tonumber(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, -1, "options");
    try {
      spec.options_lua = to_lua_literal(L, -1, str("'", at, ".options'"));
    } catch (...) {
      lua_pop(L, 3);
      throw;
    }
    lua_pop(L, 2);
    int sources = !spec.file.empty() + !spec.code.empty() + !spec.builtin.empty();
    if (sources != 1) {
      lua_pop(L, 1);
      throw RecipeError(str(where, "'", at, "' (reward '", spec.name, "') must have exactly one of file, code or builtin"));
    }
    if (!spec.file.empty() && std::filesystem::path(spec.file).is_relative())
      spec.file = (std::filesystem::path(dir) / spec.file).lexically_normal().string();
    cfg.specs.push_back(std::move(spec));
  }
  lua_pop(L, 1);
  return cfg;
}

RewardConfig reward_config_from_recipe(const lua::Recipe& recipe, const std::string& dotted) {
  uint64_t seed = recipe.has("seed") ? static_cast<uint64_t>(recipe.integer("seed")) : 0;
  std::string base = std::filesystem::path(recipe.path()).parent_path().string();
  lua_State* L = recipe.L();
  recipe.push(dotted);
  try {
    RewardConfig cfg = reward_config_from_lua(L, -1, base, seed, recipe.path() + ": ", dotted.empty() ? "" : dotted + ".");
    lua_pop(L, 1);
    return cfg;
  } catch (...) {
    lua_pop(L, 1);
    throw;
  }
}

}  // namespace mathrl::reward_lua
