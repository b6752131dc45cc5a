// mathrl.model.load(dir [, {dtype = "float32", device = "cpu"}]) -> model
// mathrl.model.new(config [, seed]) -> a random-initialized model; config uses config.json's keys
// model:parameter_count(), model:config() -> table, model:logprobs(ids) -> per-token log-probs,
// model:save(dir [, dtype])
#include "modules/model_module.h"

#include <memory>

#include "common/error.h"
#include "lua_host.h"
#include "model/checkpoint.h"
#include "model/logprobs.h"

namespace mathrl::lua {

namespace {
constexpr const char* kMeta = "mathrl.Model";
using Holder = std::shared_ptr<model::Decoder>;
}  // namespace

model::Decoder* test_model(lua_State* L, int idx) {
  auto* h = static_cast<Holder*>(luaL_testudata(L, idx, kMeta));
  return h && *h ? h->get() : nullptr;
}

namespace {

model::Decoder& self(lua_State* L, const char* fname) {
  model::Decoder* m = test_model(L, 1);
  if (!m) arg_error(L, 1, fname, "model expected");
  return *m;
}

void push_model(lua_State* L, model::Decoder d) {
  void* mem = lua_newuserdatauv(L, sizeof(Holder), 0);
  new (mem) Holder(std::make_shared<model::Decoder>(std::move(d)));
  luaL_setmetatable(L, kMeta);
}

std::string opt_field(lua_State* L, int idx, const char* key, const std::string& fallback) {
  if (!lua_istable(L, idx)) return fallback;
  lua_getfield(L, idx, key);
  std::string v = lua_isstring(L, -1) ? lua_tostring(L, -1) : fallback;
  lua_pop(L, 1);
  return v;
}

int load(lua_State* L) {
  std::string dir = arg_string(L, 1, "mathrl.model.load");
  if (!lua_isnoneornil(L, 2)) arg_table(L, 2, "mathrl.model.load");
  at::ScalarType dtype = model::parse_dtype(opt_field(L, 2, "dtype", "float32"));
  at::Device device(opt_field(L, 2, "device", "cpu"));
  push_model(L, model::load_decoder(dir, dtype, device));
  return 1;
}

// Builds config.json text from a Lua table of config keys (numbers, booleans, strings).
int create(lua_State* L) {
  arg_table(L, 1, "mathrl.model.new");
  long long seed = lua_isnoneornil(L, 2) ? 0 : arg_integer(L, 2, "mathrl.model.new");
  std::string json = "{";
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    if (lua_type(L, -2) != LUA_TSTRING) arg_error(L, 1, "mathrl.model.new", "config keys must be names");
    std::string key = lua_tostring(L, -2), value;
    if (lua_isinteger(L, -1)) value = std::to_string(lua_tointeger(L, -1));
    else if (lua_type(L, -1) == LUA_TNUMBER) value = str(lua_tonumber(L, -1));
    else if (lua_isboolean(L, -1)) value = lua_toboolean(L, -1) ? "true" : "false";
    else if (lua_type(L, -1) == LUA_TSTRING) value = str("\"", lua_tostring(L, -1), "\"");
    else arg_error(L, 1, "mathrl.model.new", str("config value '", key, "' must be a number, boolean or string"));
    json += str(json.size() > 1 ? "," : "", "\"", key, "\":", value);
    lua_pop(L, 1);
  }
  json += "}";
  push_model(L, model::random_decoder(model::parse_config(json, "mathrl.model.new"), static_cast<uint64_t>(seed)));
  return 1;
}

int parameter_count(lua_State* L) {
  model::Decoder& m = self(L, "model:parameter_count");
  int64_t n = 0;
  for (const auto& p : m->parameters()) n += p.numel();
  lua_pushinteger(L, n);
  return 1;
}

int config(lua_State* L) {
  const model::ModelConfig& c = self(L, "model:config")->config();
  lua_newtable(L);
  auto set_int = [&](const char* k, int64_t v) { lua_pushinteger(L, v); lua_setfield(L, -2, k); };
  set_int("vocab_size", c.vocab_size);
  set_int("hidden_size", c.hidden_size);
  set_int("intermediate_size", c.intermediate_size);
  set_int("num_hidden_layers", c.num_hidden_layers);
  set_int("num_attention_heads", c.num_attention_heads);
  set_int("num_key_value_heads", c.num_key_value_heads);
  set_int("head_dim", c.head_size());
  set_int("max_position_embeddings", c.max_position_embeddings);
  lua_pushnumber(L, c.rope_theta);
  lua_setfield(L, -2, "rope_theta");
  lua_pushstring(L, c.rope_scaling.type.c_str());
  lua_setfield(L, -2, "rope_scaling");
  lua_pushboolean(L, c.tie_word_embeddings);
  lua_setfield(L, -2, "tie_word_embeddings");
  lua_pushstring(L, c.model_type.c_str());
  lua_setfield(L, -2, "model_type");
  return 1;
}

int logprobs(lua_State* L) {
  model::Decoder& m = self(L, "model:logprobs");
  arg_table(L, 2, "model:logprobs");
  std::vector<int32_t> ids;
  for (lua_Integer i = 1, n = luaL_len(L, 2); i <= n; ++i) {
    lua_rawgeti(L, 2, i);
    int isnum = 0;
    lua_Integer v = lua_tointegerx(L, -1, &isnum);
    lua_pop(L, 1);
    if (!isnum || v < 0 || v >= m->config().vocab_size)
      arg_error(L, 2, "model:logprobs", str("element ", i, " is not a token id of this model"));
    ids.push_back(static_cast<int32_t>(v));
  }
  auto lp = model::sequence_logprobs(m, {ids});
  lua_createtable(L, static_cast<int>(lp[0].size()), 0);
  for (size_t i = 0; i < lp[0].size(); ++i) {
    lua_pushnumber(L, lp[0][i]);
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  return 1;
}

int save(lua_State* L) {
  model::Decoder& m = self(L, "model:save");
  std::string dir = arg_string(L, 2, "model:save");
  model::save_decoder(m, dir, model::parse_dtype(opt_string(L, 3, "model:save", "float32")));
  return 0;
}

int gc(lua_State* L) {
  if (auto* h = static_cast<Holder*>(luaL_testudata(L, 1, kMeta))) h->~Holder();
  return 0;
}

const luaL_Reg methods[] = {
    {"parameter_count", trampoline<parameter_count>}, {"config", trampoline<config>},
    {"logprobs", trampoline<logprobs>},               {"save", trampoline<save>},
    {nullptr, nullptr},
};
const luaL_Reg functions[] = {
    {"load", trampoline<load>},
    {"new", trampoline<create>},
    {nullptr, nullptr},
};

}  // namespace

int open_model_module(lua_State* L) {
  if (luaL_newmetatable(L, kMeta)) {
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  luaL_newlib(L, functions);
  return 1;
}

}  // namespace mathrl::lua
