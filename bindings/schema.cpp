#include "schema.h"

#include <cctype>
#include <cstdlib>

#include "common/error.h"
#include "common/strings.h"
#include "lua_host.h"

namespace mathrl::lua {

const Field* Schema::find(const std::string& n) const {
  for (const auto& f : fields)
    if (f.name == n) return &f;
  return nullptr;
}

std::vector<std::string> Schema::names() const {
  std::vector<std::string> out;
  for (const auto& f : fields) out.push_back(f.name);
  return out;
}

const char* field_type_name(FieldType t) {
  switch (t) {
    case FieldType::Any: return "any";
    case FieldType::Bool: return "boolean";
    case FieldType::Int: return "integer";
    case FieldType::Number: return "number";
    case FieldType::String: return "string";
    case FieldType::Function: return "function";
    case FieldType::NumberOrFunction: return "number or function";
    case FieldType::Table: return "table";
    case FieldType::List: return "list";
    case FieldType::Section: return "table";
  }
  return "?";
}

namespace {

bool type_matches(lua_State* L, int idx, FieldType t) {
  int lt = lua_type(L, idx);
  switch (t) {
    case FieldType::Any: return true;
    case FieldType::Bool: return lt == LUA_TBOOLEAN;
    case FieldType::Int: return lt == LUA_TNUMBER && (lua_isinteger(L, idx) || [&] {
                                  lua_Integer i;
                                  return lua_numbertointeger(lua_tonumber(L, idx), &i) != 0 &&
                                         static_cast<double>(i) == lua_tonumber(L, idx);
                                }());
    case FieldType::Number: return lt == LUA_TNUMBER;
    case FieldType::String: return lt == LUA_TSTRING;
    case FieldType::Function: return lt == LUA_TFUNCTION;
    case FieldType::NumberOrFunction: return lt == LUA_TNUMBER || lt == LUA_TFUNCTION;
    case FieldType::Table:
    case FieldType::List:
    case FieldType::Section: return lt == LUA_TTABLE;
  }
  return false;
}

// Evaluates a Lua expression in an empty environment and leaves its value on the stack.
// A bare word ("gpu", "process", "advantage_v2") is a string, as a shell user means it; Lua would
// read it as a missing global and give nil.
bool bare_word(const std::string& s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  return s != "true" && s != "false" && s != "nil";
}

void push_lua_literal(lua_State* L, const std::string& expr, const std::string& what) {
  if (bare_word(expr)) {
    lua_pushlstring(L, expr.data(), expr.size());
    return;
  }
  std::string chunk = "return " + expr;
  if (luaL_loadbufferx(L, chunk.data(), chunk.size(), ("=" + what).c_str(), "t") != LUA_OK) {
    std::string msg = lua_tostring(L, -1);
    lua_pop(L, 1);
    throw RecipeError(str(what, ": cannot parse '", expr, "' as a Lua value: ", msg));
  }
  lua_newtable(L);  // empty _ENV: literals only, no access to globals
  lua_setupvalue(L, -2, 1);
  protected_call(L, 0, 1, what);
}

}  // namespace

void validate(lua_State* L, int idx, const Schema& schema, const std::string& path, const std::string& where) {
  idx = lua_absindex(L, idx);
  // Unknown keys first: a misspelled field must be reported, not replaced by its default.
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING) {
      std::string key = describe_value(L, -1);
      lua_pop(L, 1);
      throw RecipeError(str(where, "recipe ", schema.name, ": unexpected key ", key, " in '",
                            path.empty() ? schema.name : path.substr(0, path.size() - 1), "' (fields have names)"));
    }
    std::string key = lua_tostring(L, -1);
    if (!schema.find(key) && !(key.size() > 2 && key[0] == '_' && key[1] == '_')) {
      std::vector<std::string> candidates;
      for (auto& n : schema.names()) candidates.push_back(path + n);
      lua_pop(L, 1);
      throw RecipeError(str(where, "unknown field '", path, key, "'", did_you_mean(path + key, candidates)));
    }
  }
  for (const auto& f : schema.fields) {
    lua_getfield(L, idx, f.name.c_str());
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      if (f.required) throw RecipeError(str(where, "missing required field '", path, f.name, "' (", f.doc, ")"));
      if (f.type == FieldType::Section) {
        lua_newtable(L);
      } else if (!f.default_lua.empty()) {
        push_lua_literal(L, f.default_lua, "default of " + path + f.name);
      } else {
        continue;
      }
      lua_setfield(L, idx, f.name.c_str());
      lua_getfield(L, idx, f.name.c_str());
    }
    if (!type_matches(L, -1, f.type)) {
      std::string got = type_name_at(L, -1);
      if (lua_type(L, -1) == LUA_TNUMBER && f.type == FieldType::Int) got = "non-integer number";
      lua_pop(L, 1);
      throw RecipeError(str(where, "field '", path, f.name, "' must be a ", field_type_name(f.type), ", got ", got));
    }
    if (f.type == FieldType::Int && !lua_isinteger(L, -1)) {  // 3.0 -> 3
      lua_Integer i;
      lua_numbertointeger(lua_tonumber(L, -1), &i);
      lua_pushinteger(L, i);
      lua_setfield(L, idx, f.name.c_str());
    }
    if (!f.choices.empty()) {
      std::string v = lua_tostring(L, -1);
      bool ok = false;
      for (auto& c : f.choices) ok = ok || c == v;
      if (!ok) {
        std::string all;
        for (auto& c : f.choices) all += (all.empty() ? "" : ", ") + c;
        lua_pop(L, 1);
        throw RecipeError(str(where, "field '", path, f.name, "' is '", v, "'; expected one of: ", all,
                              did_you_mean(v, f.choices)));
      }
    }
    if (f.type == FieldType::Section) validate(L, -1, *f.section, path + f.name + ".", where);
    lua_pop(L, 1);
  }
}

void apply_override(lua_State* L, int idx, const Schema& schema, const std::string& assignment) {
  idx = lua_absindex(L, idx);
  auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw RecipeError(str("--set ", assignment, ": expected KEY=VALUE (for example --set rl.beta=0.02)"));
  std::string key = std::string(trim(assignment.substr(0, eq))), value = assignment.substr(eq + 1);
  std::vector<std::string> parts = split(key, '.');
  const Schema* s = &schema;
  std::string path;
  lua_pushvalue(L, idx);
  for (size_t i = 0; i < parts.size(); ++i) {
    const Field* f = s->find(parts[i]);
    if (!f) {
      std::vector<std::string> candidates;
      for (auto& n : s->names()) candidates.push_back(path + n);
      lua_pop(L, 1);
      throw RecipeError(str("--set ", key, ": unknown field '", path, parts[i], "'", did_you_mean(path + parts[i], candidates)));
    }
    bool last = i + 1 == parts.size();
    if (!last && (f->type == FieldType::Table || f->type == FieldType::Any)) {
      // Free-form table: walk (creating tables as needed) and set the leaf to a Lua literal, or to
      // the text itself when it is not one (--set params.dataset=gsm8k).
      for (size_t k = i; k + 1 < parts.size(); ++k) {
        lua_getfield(L, -1, parts[k].c_str());
        if (!lua_istable(L, -1)) {
          lua_pop(L, 1);
          lua_newtable(L);
          lua_pushvalue(L, -1);
          lua_setfield(L, -3, parts[k].c_str());
        }
        lua_remove(L, -2);
      }
      try {
        push_lua_literal(L, value, "--set " + key);
      } catch (const RecipeError&) {
        lua_pushlstring(L, value.data(), value.size());
      }
      lua_setfield(L, -2, parts.back().c_str());
      lua_pop(L, 1);
      return;
    }
    if (!last) {
      if (f->type != FieldType::Section) {
        lua_pop(L, 1);
        throw RecipeError(str("--set ", key, ": '", path, f->name, "' is a ", field_type_name(f->type), ", not a section"));
      }
      lua_getfield(L, -1, f->name.c_str());
      if (!lua_istable(L, -1)) {  // section not written in the recipe yet
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, -3, f->name.c_str());
      }
      lua_remove(L, -2);
      s = f->section;
      path += f->name + ".";
      continue;
    }
    std::string what = "--set " + key;
    switch (f->type) {
      case FieldType::Bool:
        if (value == "true" || value == "1" || value == "yes") lua_pushboolean(L, 1);
        else if (value == "false" || value == "0" || value == "no") lua_pushboolean(L, 0);
        else throw RecipeError(str(what, ": expected true or false, got '", value, "'"));
        break;
      case FieldType::Int:
      case FieldType::Number:
      case FieldType::NumberOrFunction: {
        char* end = nullptr;
        double d = std::strtod(value.c_str(), &end);
        if (value.empty() || *end) throw RecipeError(str(what, ": expected a number, got '", value, "'"));
        if (f->type == FieldType::Int) {
          if (d != static_cast<double>(static_cast<long long>(d)))
            throw RecipeError(str(what, ": expected an integer, got '", value, "'"));
          lua_pushinteger(L, static_cast<lua_Integer>(d));
        } else {
          lua_pushnumber(L, d);
        }
        break;
      }
      case FieldType::String: lua_pushlstring(L, value.data(), value.size()); break;
      case FieldType::Function:
        throw RecipeError(str(what, ": '", path, f->name, "' is a function and cannot be set from the command line"));
      default: push_lua_literal(L, value, what); break;
    }
    lua_setfield(L, -2, f->name.c_str());
  }
  lua_pop(L, 1);
}

std::string describe_schema(const Schema& schema, const std::string& path) {
  std::string out;
  for (const auto& f : schema.fields) {
    out += str("  ", path, f.name, " (", field_type_name(f.type), f.required ? ", required" : "",
               f.default_lua.empty() ? "" : ", default " + f.default_lua, "): ", f.doc, "\n");
    if (f.type == FieldType::Section) out += describe_schema(*f.section, path + f.name + ".");
  }
  return out;
}

}  // namespace mathrl::lua
