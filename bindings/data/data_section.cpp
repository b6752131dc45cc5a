#include "data/data_section.h"

#include <cmath>
#include <filesystem>
#include <memory>
#include <vector>

#include "common/error.h"
#include "data/jsonl_source.h"
#include "data/mixed_stream.h"
#include "data/shard_source.h"
#include "data/text_source.h"
#include "lua_host.h"
#include "lua_json.h"
#include "tokenizer/tokenizer.h"

namespace mathrl::lua {

const Schema& data_source_schema() {
  static const Schema schema{
      "source",
      {
          {"name", FieldType::String, "", "name of the source (reports, metrics, resume state)", nullptr, {}, true},
          {"path", FieldType::String, "", "file (or a directory, for text), relative to the working directory",
           nullptr, {}, true},
          {"format", FieldType::String, "", "jsonl, text or shard (default: from the extension: .jsonl/.json, .bin, else text)",
           nullptr, {"jsonl", "text", "shard"}},
          {"weight", FieldType::NumberOrFunction, "1.0",
           "share of the tokens (normalized over the sources, >= 0), or function(step) returning it"},
          {"epochs", FieldType::Number, "", "passes over the source (fractions allowed; default 1, or unlimited with max_tokens)"},
          {"max_tokens", FieldType::Number, "", "stop after this many tokens (the last document is cut)"},
          {"shuffle", FieldType::Bool, "true", "shuffle the order of the records every epoch (by the run's seed)"},
          {"seed", FieldType::Int, "", "shuffle seed of this source (default: derived from the run's seed and the name)"},
          {"text", FieldType::Function, "", "jsonl: function(record) returning the document text (nil skips it)"},
          {"template", FieldType::Function, "",
           "jsonl: function(record) returning {prompt =, response =} (loss on the response only; nil skips it)"},
          {"field", FieldType::String, "", "jsonl without text/template: the string field holding the text (default 'text')"},
          {"per_line", FieldType::Bool, "", "text: one document per non-blank line instead of one per file"},
          {"dtype", FieldType::String, "", "shard: the expected token type (default: whatever the header says)", nullptr,
           {"uint16", "uint32"}},
          {"chunk_tokens", FieldType::Int, "", "shard without document separators: tokens per document (default 2048)"},
      }};
  return schema;
}

const Schema& data_section_schema() {
  static const Schema schema{
      "data",
      {
          {"sources", FieldType::List, "",
           "data sources: {name=, path=, format=jsonl|text|shard, weight=, epochs=, max_tokens=, shuffle=, seed=, "
           "text=|template=|field= (jsonl), per_line= (text), dtype=, chunk_tokens= (shard)}",
           nullptr, {}, true},
          {"strict", FieldType::Bool, "false", "a malformed record stops the run (file:line) instead of being skipped and counted"},
          {"bos", FieldType::Bool, "true", "start every text/jsonl document with the tokenizer's BOS, when it has one"},
      }};
  return schema;
}

namespace {

// A Lua function kept alive in the registry for the state's lifetime (never unreferenced, so a stream
// outliving nothing but its own state cannot touch a closed state in a destructor).
struct LuaFunction {
  lua_State* L;
  int ref;
};

LuaFunction ref_field(lua_State* L, int table, const char* name) {
  lua_getfield(L, table, name);
  return {L, luaL_ref(L, LUA_REGISTRYINDEX)};
}

std::string string_of(lua_State* L, int idx) {
  size_t n = 0;
  const char* s = lua_tolstring(L, idx, &n);
  return std::string(s, n);
}

// Reads `key` of the table at the top as a string; nullopt when absent, DataError for another type.
std::optional<std::string> pair_side(lua_State* L, const char* key, const std::string& what) {
  lua_getfield(L, -1, key);
  const int t = lua_type(L, -1);
  if (t == LUA_TNIL) {
    lua_pop(L, 1);
    return std::nullopt;
  }
  if (t != LUA_TSTRING) {
    std::string got = luaL_typename(L, -1);
    lua_pop(L, 1);
    throw DataError(str(what, " returned a table whose '", key, "' is a ", got, ", expected a string"));
  }
  std::string s = string_of(L, -1);
  lua_pop(L, 1);
  return s;
}

data::Mapper lua_mapper(LuaFunction fn, bool is_template, std::string what) {
  return [fn, is_template, what = std::move(what)](const rapidjson::Value& record, size_t) -> std::optional<data::Mapped> {
    lua_State* L = fn.L;
    const int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, fn.ref);
    try {
      push_json(L, record);
    } catch (...) {
      lua_settop(L, top);
      throw;
    }
    protected_call(L, 1, 1, what);  // pops the function and argument even on error
    struct Restore {
      lua_State* L;
      int top;
      ~Restore() { lua_settop(L, top); }
    } restore{L, top};
    const int t = lua_type(L, -1);
    if (t == LUA_TNIL) return std::nullopt;
    if (!is_template) {
      if (t != LUA_TSTRING) throw DataError(str(what, " returned a ", luaL_typename(L, -1), ", expected a string"));
      return data::Mapped::whole(string_of(L, -1));
    }
    if (t != LUA_TTABLE)
      throw DataError(str(what, " returned a ", luaL_typename(L, -1), ", expected {prompt = ..., response = ...}"));
    auto prompt = pair_side(L, "prompt", what);
    auto response = pair_side(L, "response", what);
    if (!prompt || !response) return std::nullopt;
    return data::Mapped::pair(std::move(*prompt), std::move(*response));
  };
}

std::function<double(int64_t)> lua_weight(LuaFunction fn, std::string what) {
  return [fn, what = std::move(what)](int64_t step) {
    lua_State* L = fn.L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, fn.ref);
    lua_pushinteger(L, static_cast<lua_Integer>(step));
    protected_call(L, 1, 1, what);
    if (lua_type(L, -1) != LUA_TNUMBER) {
      std::string got = luaL_typename(L, -1);
      lua_pop(L, 1);
      throw RecipeError(str(what, " returned a ", got, " at step ", step, ", expected a number"));
    }
    const double w = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return w;
  };
}

bool has(lua_State* L, int table, const char* name) {
  lua_getfield(L, table, name);
  const bool present = !lua_isnil(L, -1);
  lua_pop(L, 1);
  return present;
}

double number(lua_State* L, int table, const char* name) {
  lua_getfield(L, table, name);
  const double v = lua_tonumber(L, -1);
  lua_pop(L, 1);
  return v;
}

std::string string(lua_State* L, int table, const char* name, const std::string& fallback = "") {
  lua_getfield(L, table, name);
  std::string v = lua_type(L, -1) == LUA_TSTRING ? string_of(L, -1) : fallback;
  lua_pop(L, 1);
  return v;
}

std::string infer_format(const std::string& path) {
  const std::string ext = std::filesystem::path(path).extension().string();
  if (ext == ".jsonl" || ext == ".json") return "jsonl";
  if (ext == ".bin") return "shard";
  return "text";
}

data::SourceConfig make_source(lua_State* L, int entry, const Tokenizer& tokenizer, bool bos, const std::string& at,
                               const std::string& where) {
  data::SourceConfig cfg;
  cfg.name = string(L, entry, "name");
  const std::string path = string(L, entry, "path");
  const std::string format = has(L, entry, "format") ? string(L, entry, "format") : infer_format(path);
  const char* only_for[][2] = {{"text", "jsonl"},     {"template", "jsonl"}, {"field", "jsonl"},
                               {"per_line", "text"}, {"dtype", "shard"},    {"chunk_tokens", "shard"}};
  for (auto& [field, fmt] : only_for)
    if (has(L, entry, field) && format != fmt)
      throw RecipeError(str(where, "field '", at, field, "' applies to ", fmt, " sources; '", cfg.name, "' is ", format));
  if (has(L, entry, "text") && has(L, entry, "template"))
    throw RecipeError(str(where, "source '", cfg.name, "' has both '", at, "text' and '", at, "template'; give one"));

  lua_getfield(L, entry, "weight");
  if (lua_type(L, -1) == LUA_TFUNCTION) {
    cfg.weight_fn = lua_weight({L, luaL_ref(L, LUA_REGISTRYINDEX)}, str("data source '", cfg.name, "' weight"));
  } else {
    cfg.weight = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (!std::isfinite(cfg.weight) || cfg.weight < 0)
      throw RecipeError(str(where, "field '", at, "weight' must be a finite number >= 0, got ", cfg.weight));
  }
  auto count = [&](const char* field) {
    const double v = number(L, entry, field);
    if (!std::isfinite(v) || v < 0 || (std::string(field) == "max_tokens" && v != std::floor(v)))
      throw RecipeError(str(where, "field '", at, field, "' must be a ", std::string(field) == "max_tokens" ? "whole " : "",
                            "number >= 0, got ", v));
    return v;
  };
  if (has(L, entry, "epochs")) cfg.epochs = count("epochs");
  if (has(L, entry, "max_tokens")) cfg.max_tokens = static_cast<uint64_t>(count("max_tokens"));
  lua_getfield(L, entry, "shuffle");
  cfg.shuffle = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (has(L, entry, "seed")) {
    lua_getfield(L, entry, "seed");
    cfg.seed = static_cast<uint64_t>(lua_tointeger(L, -1));  // validated as an integer by the schema
    lua_pop(L, 1);
  }

  if (format == "jsonl") {
    data::Mapper mapper;
    if (has(L, entry, "text"))
      mapper = lua_mapper(ref_field(L, entry, "text"), false, str("data source '", cfg.name, "' text function"));
    else if (has(L, entry, "template"))
      mapper = lua_mapper(ref_field(L, entry, "template"), true, str("data source '", cfg.name, "' template"));
    else
      mapper = data::field_mapper(string(L, entry, "field", "text"));
    cfg.source = std::make_unique<data::JsonlSource>(path, std::move(mapper), tokenizer, bos);
  } else if (format == "text") {
    lua_getfield(L, entry, "per_line");
    const bool per_line = lua_toboolean(L, -1);
    lua_pop(L, 1);
    cfg.source = std::make_unique<data::TextSource>(path, per_line, tokenizer, bos);
  } else {
    const std::string dtype = string(L, entry, "dtype");
    const int bytes = dtype == "uint16" ? 2 : dtype == "uint32" ? 4 : 0;
    const double chunk = has(L, entry, "chunk_tokens") ? number(L, entry, "chunk_tokens") : 2048;
    if (chunk < 1) throw RecipeError(str(where, "field '", at, "chunk_tokens' must be at least 1, got ", chunk));
    cfg.source = std::make_unique<data::ShardSource>(path, bytes, tokenizer.vocab_size(), static_cast<uint64_t>(chunk));
  }
  return cfg;
}

}  // namespace

std::unique_ptr<data::DocumentStream> make_document_stream(lua_State* L, int idx, const Tokenizer& tokenizer,
                                                           uint64_t seed, const std::string& where,
                                                           std::function<void(const std::string&)> warn,
                                                           const std::string& path) {
  idx = lua_absindex(L, idx);
  const int top = lua_gettop(L);
  struct Restore {
    lua_State* L;
    int top;
    ~Restore() { lua_settop(L, top); }
  } restore{L, top};
  const std::string section = path.empty() ? "data" : path.substr(0, path.size() - 1);
  if (!lua_istable(L, idx))
    throw RecipeError(str(where, "field '", section, "' must be a table, got ", luaL_typename(L, idx)));
  validate(L, idx, data_section_schema(), path, where);
  lua_getfield(L, idx, "bos");
  const bool bos = lua_toboolean(L, -1);
  lua_getfield(L, idx, "strict");
  data::StreamOptions options;
  options.strict = lua_toboolean(L, -1);
  options.seed = seed;
  options.warn = std::move(warn);
  lua_pop(L, 2);

  lua_getfield(L, idx, "sources");
  const int list = lua_gettop(L);
  const lua_Integer n = static_cast<lua_Integer>(lua_rawlen(L, list));
  if (n == 0) throw RecipeError(str(where, "field '", path, "sources' is empty; give at least one source"));
  std::vector<data::SourceConfig> sources;
  for (lua_Integer i = 1; i <= n; ++i) {
    const std::string at = str(path, "sources[", i, "].");
    lua_rawgeti(L, list, i);
    if (!lua_istable(L, -1))
      throw RecipeError(str(where, "field '", path, "sources[", i, "]' must be a table, got ", luaL_typename(L, -1)));
    validate(L, -1, data_source_schema(), at, where);
    sources.push_back(make_source(L, lua_gettop(L), tokenizer, bos, at, where));
    lua_pop(L, 1);
  }
  try {
    return std::make_unique<data::MixedStream>(std::move(sources), std::move(options));
  } catch (const RecipeError&) {
    throw;
  } catch (const UsageError& e) {  // weights all zero, duplicate names
    throw RecipeError(str(where, e.what()));
  }
}

}  // namespace mathrl::lua
