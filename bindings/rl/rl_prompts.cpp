#include "rl/rl_prompts.h"

#include <filesystem>
#include <random>

#include "common/error.h"
#include "common/jsonl.h"
#include "common/strings.h"
#include "lua_json.h"
#include "reward/reward_host.h"
#include "tokenizer/tokenizer.h"

namespace mathrl::lua {

namespace {

std::string join_ids(const std::vector<int32_t>& ids) {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) out += (i ? " " : "") + std::to_string(ids[i]);
  return out;
}

// The prompt function's result (on the stack top) into `p`. Returns false for nil (skip).
bool read_mapped(lua_State* L, const Tokenizer* tok, int32_t bos, const std::string& where, RlPrompt& p) {
  if (lua_isnil(L, -1)) return false;
  if (!lua_istable(L, -1))
    throw RecipeError(str(where, ": prompt function must return a table {prompt = ..., answer = ...} or nil, got ",
                          luaL_typename(L, -1)));
  lua_getfield(L, -1, "prompt_ids");
  if (lua_istable(L, -1)) {
    lua_Integer n = luaL_len(L, -1);
    for (lua_Integer i = 1; i <= n; ++i) {
      lua_rawgeti(L, -1, i);
      if (!lua_isinteger(L, -1)) throw RecipeError(str(where, ": prompt_ids must be a list of integers"));
      p.ids.push_back(static_cast<int32_t>(lua_tointeger(L, -1)));
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  lua_getfield(L, -1, "prompt");
  if (lua_type(L, -1) == LUA_TSTRING) p.text = lua_tostring(L, -1);
  lua_pop(L, 1);
  if (p.ids.empty()) {
    if (!tok) throw RecipeError(str(where, ": without a tokenizer the prompt function must return prompt_ids"));
    if (p.text.empty()) throw RecipeError(str(where, ": prompt function returned no prompt text"));
    if (bos >= 0) p.ids.push_back(bos);
    tok->encode_into(p.text, false, p.ids);
  } else if (p.text.empty()) {
    p.text = tok ? tok->decode(p.ids) : join_ids(p.ids);
  }
  lua_getfield(L, -1, "answer");
  if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER) p.answer = lua_tostring(L, -1);
  lua_pop(L, 1);
  return true;
}

std::vector<std::string> data_paths(const Recipe& recipe, lua_State* L) {
  std::string base = std::filesystem::path(recipe.path()).parent_path().string();
  // As given (absolute, or relative to the working directory) when it exists, else beside the recipe.
  auto resolve = [&](const std::string& p) {
    if (std::filesystem::path(p).is_absolute() || base.empty() || std::filesystem::exists(p)) return p;
    return base + "/" + p;
  };
  std::vector<std::string> out;
  if (lua_type(L, -1) == LUA_TSTRING) {
    out.push_back(resolve(lua_tostring(L, -1)));
  } else {
    lua_Integer n = luaL_len(L, -1);
    for (lua_Integer i = 1; i <= n; ++i) {
      lua_rawgeti(L, -1, i);
      if (lua_type(L, -1) == LUA_TSTRING) out.push_back(resolve(lua_tostring(L, -1)));
      lua_pop(L, 1);
    }
  }
  return out;
}

}  // namespace

std::vector<RlPrompt> load_rl_prompts(const Recipe& recipe, const Tokenizer* tok, int32_t bos, int64_t max_prompts) {
  lua_State* L = recipe.L();
  std::vector<RlPrompt> out;
  auto full = [&] { return max_prompts > 0 && static_cast<int64_t>(out.size()) >= max_prompts; };
  recipe.push("data");
  const int data = lua_gettop(L);
  bool inline_records = lua_istable(L, data) && luaL_len(L, data) > 0 && (lua_rawgeti(L, data, 1), lua_istable(L, -1));
  if (lua_istable(L, data)) lua_pop(L, 1);  // the probe of element 1
  if (inline_records) {
    lua_Integer n = luaL_len(L, data);
    for (lua_Integer i = 1; i <= n && !full(); ++i) {
      recipe.push("prompt");
      lua_rawgeti(L, data, i);
      protected_call(L, 1, 1, "rl prompt function");
      RlPrompt p;
      if (read_mapped(L, tok, bos, str("data[", i, "]"), p)) out.push_back(std::move(p));
      lua_pop(L, 1);
    }
  } else {
    for (const std::string& path : data_paths(recipe, L)) {
      if (!std::filesystem::exists(path)) throw DataError(str("rl: data file not found: ", path));
      LineReader reader(path);
      std::string line;
      while (!full() && reader.next(line)) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        std::string where = str(path, ":", reader.line_number());
        auto record = reward_lua::parse_record(line, where);
        recipe.push("prompt");
        push_json(L, *record);
        protected_call(L, 1, 1, "rl prompt function");
        RlPrompt p;
        if (read_mapped(L, tok, bos, where, p)) {
          p.record = record;
          out.push_back(std::move(p));
        }
        lua_pop(L, 1);
      }
    }
  }
  lua_settop(L, data - 1);
  if (out.empty()) throw UsageError("rl: no prompts (data is empty or the prompt function skipped every record)");
  return out;
}

PromptStream::PromptStream(size_t size, uint64_t seed, bool shuffle) : size_(size), seed_(seed), shuffle_(shuffle) {
  MATHRL_CHECK(size > 0, "empty prompt stream");
}

size_t PromptStream::at(uint64_t cursor) {
  uint64_t epoch = cursor / size_;
  if (!shuffle_) return static_cast<size_t>(cursor % size_);
  if (epoch != epoch_) {
    order_.resize(size_);
    for (size_t i = 0; i < size_; ++i) order_[i] = i;
    std::mt19937_64 rng(seed_ * 0x9E3779B97F4A7C15ull + epoch + 1);
    // Fisher-Yates with our own index draws (std::shuffle's algorithm is library-defined).
    for (size_t i = size_; i > 1; --i) std::swap(order_[i - 1], order_[rng() % i]);
    epoch_ = epoch;
  }
  return order_[cursor % size_];
}

}  // namespace mathrl::lua
