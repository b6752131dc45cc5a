// mathrl.tokenizer.load(path) -> tokenizer with :encode(text [, add_special]), :decode(ids [, skip_special]),
//   :vocab_size(), :id_to_token(id), :token_to_id(token), :kind(), fields bos/eos/pad (nil when absent)
// mathrl.tokenizer.train{ files = {...} | sentences = {...}, prefix = PATH, vocab_size = N,
//   split_digits = true, byte_fallback = true, model_type = "bpe", symbols = {...} } -> model path
#include "modules/tokenizer_module.h"

#include <climits>
#include <type_traits>

#include "common/error.h"
#include "common/strings.h"
#include "lua_host.h"
#include "tokenizer/tokenizer.h"

namespace mathrl::lua {

namespace {
constexpr const char* kMeta = "mathrl.Tokenizer";
}  // namespace

Tokenizer* test_tokenizer(lua_State* L, int idx) {
  auto** p = static_cast<Tokenizer**>(luaL_testudata(L, idx, kMeta));
  return p ? *p : nullptr;
}

namespace {

Tokenizer& self(lua_State* L, const char* fname) {
  Tokenizer* t = test_tokenizer(L, 1);
  if (!t) arg_error(L, 1, fname, "tokenizer expected");
  return *t;
}

std::vector<int32_t> ids_arg(lua_State* L, int arg, const char* fname, const Tokenizer& tok) {
  arg_table(L, arg, fname);
  std::vector<int32_t> ids;
  lua_Integer n = luaL_len(L, arg);
  ids.reserve(static_cast<size_t>(n));
  for (lua_Integer i = 1; i <= n; ++i) {
    lua_rawgeti(L, arg, i);
    int isnum = 0;
    lua_Integer v = lua_tointegerx(L, -1, &isnum);
    lua_pop(L, 1);
    if (!isnum || v < 0 || !tok.is_valid_id(static_cast<int32_t>(v)) || v > INT32_MAX)
      arg_error(L, arg, fname, str("element ", i, " is not a token id of this tokenizer"));
    ids.push_back(static_cast<int32_t>(v));
  }
  return ids;
}

int tok_encode(lua_State* L) {
  Tokenizer& tok = self(L, "tokenizer:encode");
  std::string text = arg_string(L, 2, "tokenizer:encode");
  std::vector<int32_t> ids = tok.encode(text, lua_toboolean(L, 3));
  lua_createtable(L, static_cast<int>(ids.size()), 0);
  for (size_t i = 0; i < ids.size(); ++i) {
    lua_pushinteger(L, ids[i]);
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  return 1;
}

int tok_decode(lua_State* L) {
  Tokenizer& tok = self(L, "tokenizer:decode");
  std::string text = tok.decode(ids_arg(L, 2, "tokenizer:decode", tok), lua_toboolean(L, 3));
  lua_pushlstring(L, text.data(), text.size());
  return 1;
}

int tok_vocab_size(lua_State* L) {
  lua_pushinteger(L, static_cast<lua_Integer>(self(L, "tokenizer:vocab_size").vocab_size()));
  return 1;
}

int tok_id_to_token(lua_State* L) {
  Tokenizer& tok = self(L, "tokenizer:id_to_token");
  long long id = arg_integer(L, 2, "tokenizer:id_to_token");
  if (id < 0 || id > INT32_MAX || !tok.is_valid_id(static_cast<int32_t>(id))) {
    lua_pushnil(L);
    return 1;
  }
  std::string t = tok.id_to_token(static_cast<int32_t>(id));
  lua_pushlstring(L, t.data(), t.size());
  return 1;
}

int tok_token_to_id(lua_State* L) {
  Tokenizer& tok = self(L, "tokenizer:token_to_id");
  int32_t id = tok.token_to_id(arg_string(L, 2, "tokenizer:token_to_id"));
  if (id < 0) lua_pushnil(L);
  else lua_pushinteger(L, id);
  return 1;
}

int tok_kind(lua_State* L) {
  lua_pushstring(L, self(L, "tokenizer:kind").kind().c_str());
  return 1;
}

int tok_index(lua_State* L) {
  Tokenizer& tok = self(L, "tokenizer.__index");
  std::string key = arg_string(L, 2, "tokenizer.__index");
  int32_t id = key == "bos" ? tok.bos_id() : key == "eos" ? tok.eos_id() : key == "pad" ? tok.pad_id() : -2;
  if (id == -2) {  // a method
    luaL_getmetatable(L, kMeta);
    lua_getfield(L, -1, "methods");
    lua_getfield(L, -1, key.c_str());
    return 1;
  }
  if (id < 0) lua_pushnil(L);
  else lua_pushinteger(L, id);
  return 1;
}

int tok_gc(lua_State* L) {
  auto** p = static_cast<Tokenizer**>(luaL_testudata(L, 1, kMeta));
  if (p && *p) {
    delete *p;
    *p = nullptr;
  }
  return 0;
}

int tok_tostring(lua_State* L) {
  Tokenizer& tok = self(L, "tokenizer.__tostring");
  std::string s = str("tokenizer(", tok.kind(), ", ", tok.vocab_size(), " tokens)");
  lua_pushstring(L, s.c_str());
  return 1;
}

void push_tokenizer(lua_State* L, std::unique_ptr<Tokenizer> tok) {
  auto** p = static_cast<Tokenizer**>(lua_newuserdatauv(L, sizeof(Tokenizer*), 0));
  *p = tok.release();
  luaL_setmetatable(L, kMeta);
}

int load(lua_State* L) {
  std::string path = arg_string(L, 1, "mathrl.tokenizer.load");
  push_tokenizer(L, load_tokenizer(path));
  return 1;
}

// Reads an optional field of the options table at index 1.
template <class T>
void field(lua_State* L, const char* name, T& out) {
  lua_getfield(L, 1, name);
  if (!lua_isnil(L, -1)) {
    if constexpr (std::is_same_v<T, bool>) out = lua_toboolean(L, -1);
    else if constexpr (std::is_same_v<T, int>) out = static_cast<int>(arg_integer(L, -1, "mathrl.tokenizer.train"));
    else if constexpr (std::is_same_v<T, double>) out = arg_number(L, -1, "mathrl.tokenizer.train");
    else out = arg_string(L, -1, "mathrl.tokenizer.train");
  }
  lua_pop(L, 1);
}

std::vector<std::string> string_list(lua_State* L, const char* name) {
  std::vector<std::string> out;
  lua_getfield(L, 1, name);
  if (lua_istable(L, -1)) {
    for (lua_Integer i = 1, n = luaL_len(L, -1); i <= n; ++i) {
      lua_rawgeti(L, -1, i);
      if (lua_type(L, -1) != LUA_TSTRING) arg_error(L, 1, "mathrl.tokenizer.train", str("'", name, "' must be a list of strings"));
      out.emplace_back(lua_tostring(L, -1));
      lua_pop(L, 1);
    }
  } else if (!lua_isnil(L, -1)) {
    arg_error(L, 1, "mathrl.tokenizer.train", str("'", name, "' must be a list of strings"));
  }
  lua_pop(L, 1);
  return out;
}

int train(lua_State* L) {
  arg_table(L, 1, "mathrl.tokenizer.train");
  static const std::vector<std::string> known = {"files", "sentences", "prefix", "vocab_size", "model_type",
                                                 "split_digits", "byte_fallback", "symbols", "character_coverage",
                                                 "threads"};
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    lua_pop(L, 1);
    std::string key = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?";
    bool ok = false;
    for (auto& k : known) ok = ok || k == key;
    if (!ok) arg_error(L, 1, "mathrl.tokenizer.train", str("unknown option '", key, "'", did_you_mean(key, known)));
  }
  TrainOptions o;
  o.input_files = string_list(L, "files");
  o.sentences = string_list(L, "sentences");
  o.user_defined_symbols = string_list(L, "symbols");
  field(L, "prefix", o.model_prefix);
  field(L, "vocab_size", o.vocab_size);
  field(L, "model_type", o.model_type);
  field(L, "split_digits", o.split_digits);
  field(L, "byte_fallback", o.byte_fallback);
  field(L, "character_coverage", o.character_coverage);
  field(L, "threads", o.num_threads);
  if (o.model_prefix.empty()) arg_error(L, 1, "mathrl.tokenizer.train", "'prefix' (where to write the model) is required");
  std::string path = train_sentencepiece(o);
  lua_pushstring(L, path.c_str());
  return 1;
}

const luaL_Reg methods[] = {
    {"encode", trampoline<tok_encode>},       {"decode", trampoline<tok_decode>},
    {"vocab_size", trampoline<tok_vocab_size>}, {"id_to_token", trampoline<tok_id_to_token>},
    {"token_to_id", trampoline<tok_token_to_id>}, {"kind", trampoline<tok_kind>},
    {nullptr, nullptr},
};
const luaL_Reg metamethods[] = {
    {"__index", trampoline<tok_index>}, {"__gc", tok_gc}, {"__tostring", trampoline<tok_tostring>},
    {nullptr, nullptr},
};
const luaL_Reg functions[] = {
    {"load", trampoline<load>},
    {"train", trampoline<train>},
    {nullptr, nullptr},
};

}  // namespace

int open_tokenizer_module(lua_State* L) {
  if (luaL_newmetatable(L, kMeta)) {
    luaL_setfuncs(L, metamethods, 0);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "methods");
  }
  lua_pop(L, 1);
  luaL_newlib(L, functions);
  return 1;
}

}  // namespace mathrl::lua
