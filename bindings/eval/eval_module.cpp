// mathrl.eval.run{model = DIR or model, tokenizer = PATH or tokenizer, bench = "gsm8k" or {...},
//   limit =, samples =, k = {...}, temperature =, top_p =, style = "auto"|"fewshot"|"zeroshot",
//   instruct =, prompt = function(problem) return text end, max_new_tokens =, seed =, batch =,
//   stop = {...}, data_dir =, path =, out = DIR, device =, dtype =, progress =}
//   -> {[bench] = {accuracy =, low =, high =, pass = {[k] = ...}, maj = {[k] = ...}, problems =,
//                  samples =, resumed_problems =, seconds =, generated_tokens =,
//                  by_level = {[level] = {accuracy =, ...}}, by_subject = {...}}}
// mathrl.eval.pass_at_k(n, c, k) -> number
// mathrl.eval.grade(output, gold) -> correct, predicted answer (or nil), gold answer (or nil)
#include "eval/eval_module.h"

#include <algorithm>
#include <filesystem>
#include <memory>

#include "common/error.h"
#include "common/strings.h"
#include "eval/metrics.h"
#include "eval/model_eval.h"
#include "lua_host.h"
#include "modules/model_module.h"
#include "modules/tokenizer_module.h"
#include "model/checkpoint.h"
#include "reward/grader.h"
#include "tokenizer/tokenizer.h"

namespace mathrl::lua {

namespace {

constexpr const char* kRun = "mathrl.eval.run";

const std::vector<std::string>& run_fields() {
  static const std::vector<std::string> names = {
      "model", "tokenizer", "bench", "limit", "samples", "k", "temperature", "top_p", "style", "instruct", "prompt",
      "max_new_tokens", "seed", "batch", "chunk", "stop", "data_dir", "path", "out", "device", "dtype", "progress"};
  return names;
}

[[noreturn]] void field_error(lua_State* L, const char* name, const std::string& msg) {
  arg_error(L, 1, kRun, str("field '", name, "': ", msg));
}

// Pushes opts[name]; returns false (and pushes nothing) when it is nil.
bool get(lua_State* L, const char* name) {
  if (lua_getfield(L, 1, name) == LUA_TNIL) {
    lua_pop(L, 1);
    return false;
  }
  return true;
}

std::string string_field(lua_State* L, const char* name, const std::string& fallback) {
  if (!get(L, name)) return fallback;
  if (lua_type(L, -1) != LUA_TSTRING) field_error(L, name, str("string expected, got ", type_name_at(L, -1)));
  std::string v = lua_tostring(L, -1);
  lua_pop(L, 1);
  return v;
}

long long integer_field(lua_State* L, const char* name, long long fallback) {
  if (!get(L, name)) return fallback;
  int ok = 0;
  lua_Integer v = lua_tointegerx(L, -1, &ok);
  if (!ok || lua_type(L, -1) != LUA_TNUMBER) field_error(L, name, str("integer expected, got ", type_name_at(L, -1)));
  lua_pop(L, 1);
  return v;
}

double number_field(lua_State* L, const char* name, double fallback) {
  if (!get(L, name)) return fallback;
  if (lua_type(L, -1) != LUA_TNUMBER) field_error(L, name, str("number expected, got ", type_name_at(L, -1)));
  double v = lua_tonumber(L, -1);
  lua_pop(L, 1);
  return v;
}

bool bool_field(lua_State* L, const char* name, bool fallback) {
  if (!get(L, name)) return fallback;
  if (!lua_isboolean(L, -1)) field_error(L, name, str("boolean expected, got ", type_name_at(L, -1)));
  bool v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

// A string, or a list of strings ("gsm8k" or {"gsm8k", "math"}; a string may be comma-separated).
std::vector<std::string> strings_field(lua_State* L, const char* name) {
  std::vector<std::string> out;
  if (!get(L, name)) return out;
  if (lua_type(L, -1) == LUA_TSTRING) {
    for (const auto& s : split(lua_tostring(L, -1), ','))
      if (!trim(s).empty()) out.emplace_back(trim(s));
  } else if (lua_istable(L, -1)) {
    for (lua_Integer i = 1, n = luaL_len(L, -1); i <= n; ++i) {
      if (lua_rawgeti(L, -1, i) != LUA_TSTRING) field_error(L, name, str("element ", i, " is not a string"));
      out.emplace_back(lua_tostring(L, -1));
      lua_pop(L, 1);
    }
  } else {
    field_error(L, name, str("string or list of strings expected, got ", type_name_at(L, -1)));
  }
  lua_pop(L, 1);
  return out;
}

std::vector<int> ints_field(lua_State* L, const char* name) {
  std::vector<int> out;
  if (!get(L, name)) return out;
  if (!lua_istable(L, -1)) field_error(L, name, str("list of integers expected, got ", type_name_at(L, -1)));
  for (lua_Integer i = 1, n = luaL_len(L, -1); i <= n; ++i) {
    lua_rawgeti(L, -1, i);
    int ok = 0;
    lua_Integer v = lua_tointegerx(L, -1, &ok);
    if (!ok || lua_type(L, -1) != LUA_TNUMBER) field_error(L, name, str("element ", i, " is not an integer"));
    out.push_back(static_cast<int>(v));
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return out;
}

void check_known_fields(lua_State* L) {
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING) arg_error(L, 1, kRun, "option names must be strings");
    std::string key = lua_tostring(L, -1);
    const auto& names = run_fields();
    if (std::find(names.begin(), names.end(), key) == names.end())
      arg_error(L, 1, kRun, str("unknown field '", key, "'", did_you_mean(key, names)));
  }
}

void push_problem(lua_State* L, const eval::Problem& p) {
  lua_createtable(L, 0, 8);
  auto set = [&](const char* k, const std::string& v) {
    lua_pushlstring(L, v.data(), v.size());
    lua_setfield(L, -2, k);
  };
  set("id", p.id);
  set("question", p.question);
  set("gold", p.gold);
  set("solution", p.solution);
  set("level", p.level);
  set("subject", p.subject);
  set("language", p.language);
  lua_pushboolean(L, p.multiple_choice);
  lua_setfield(L, -2, "multiple_choice");
}

void push_metrics(lua_State* L, const eval::MetricSet& m) {
  lua_createtable(L, 0, 6);
  lua_pushnumber(L, m.accuracy.mean);
  lua_setfield(L, -2, "accuracy");
  lua_pushnumber(L, m.accuracy.low);
  lua_setfield(L, -2, "low");
  lua_pushnumber(L, m.accuracy.high);
  lua_setfield(L, -2, "high");
  lua_pushinteger(L, m.problems);
  lua_setfield(L, -2, "problems");
  for (const auto& [name, values] : {std::pair{"pass", &m.pass_at}, std::pair{"maj", &m.maj_at}}) {
    lua_createtable(L, 0, static_cast<int>(values->size()));
    for (const auto& [k, v] : *values) {
      lua_pushnumber(L, v.mean);
      lua_rawseti(L, -2, k);
    }
    lua_setfield(L, -2, name);
  }
}

void push_groups(lua_State* L, const std::map<std::string, eval::MetricSet>& groups, const char* name) {
  lua_createtable(L, 0, static_cast<int>(groups.size()));
  for (const auto& [key, m] : groups) {
    push_metrics(L, m);
    lua_setfield(L, -2, key.c_str());
  }
  lua_setfield(L, -2, name);
}

int run(lua_State* L) {
  arg_table(L, 1, kRun);
  lua_settop(L, 1);
  check_known_fields(L);
  eval::ModelEvalOptions o;
  o.benchmarks = strings_field(L, "bench");
  if (o.benchmarks.empty()) field_error(L, "bench", "a benchmark name is required");
  o.data_dir = string_field(L, "data_dir", o.data_dir);
  o.path = string_field(L, "path", "");
  o.limit = static_cast<int>(integer_field(L, "limit", 0));
  if (o.limit < 0) field_error(L, "limit", "must be >= 0");
  o.samples = static_cast<int>(integer_field(L, "samples", 1));
  if (o.samples < 1) field_error(L, "samples", str("must be >= 1 (got ", o.samples, ")"));
  o.ks = ints_field(L, "k");
  for (int k : o.ks)
    if (k < 1 || k > o.samples) field_error(L, "k", str("k=", k, " is outside 1..", o.samples, " (the number of samples)"));
  o.temperature = number_field(L, "temperature", o.temperature);
  o.top_p = number_field(L, "top_p", o.top_p);
  std::string style = string_field(L, "style", "auto");
  bool instruct = bool_field(L, "instruct", false);
  if (style == "auto") o.style = instruct ? eval::PromptStyle::ZeroShot : eval::PromptStyle::FewShot;
  else if (style == "fewshot") o.style = eval::PromptStyle::FewShot;
  else if (style == "zeroshot") o.style = eval::PromptStyle::ZeroShot;
  else field_error(L, "style", str("expected auto, fewshot or zeroshot, got '", style, "'"));
  o.max_new_tokens = static_cast<int>(integer_field(L, "max_new_tokens", o.max_new_tokens));
  if (o.max_new_tokens < 1) field_error(L, "max_new_tokens", "must be >= 1");
  o.seed = static_cast<uint64_t>(integer_field(L, "seed", 0));
  o.batch = integer_field(L, "batch", o.batch);
  if (o.batch < 1) field_error(L, "batch", "must be >= 1");
  o.chunk_problems = static_cast<int>(integer_field(L, "chunk", 0));
  o.stop = strings_field(L, "stop");
  o.out_dir = string_field(L, "out", "");
  o.progress = bool_field(L, "progress", true);

  // The template override: the function stays in opts.prompt, called for each problem.
  if (get(L, "prompt")) {
    if (!lua_isfunction(L, -1)) field_error(L, "prompt", str("function expected, got ", type_name_at(L, -1)));
    lua_pop(L, 1);
    o.prompt = [L](const eval::Problem& p) {
      lua_getfield(L, 1, "prompt");
      push_problem(L, p);
      protected_call(L, 1, 1, "eval prompt");
      if (lua_type(L, -1) != LUA_TSTRING) {
        std::string got = type_name_at(L, -1);
        lua_pop(L, 1);
        throw UsageError(str(kRun, ": the prompt function must return a string (got ", got, " for problem ", p.id, ")"));
      }
      std::string text = lua_tostring(L, -1);
      lua_pop(L, 1);
      return text;
    };
  }

  // The model: a directory, or a model from mathrl.model (used on its own device and dtype).
  model::Decoder loaded{nullptr};
  model::Decoder* model = nullptr;
  std::string model_dir;
  lua_getfield(L, 1, "model");
  if (model::Decoder* given = test_model(L, -1)) {
    model = given;
  } else if (lua_type(L, -1) == LUA_TSTRING) {
    model_dir = lua_tostring(L, -1);
  } else {
    field_error(L, "model", str("directory or model expected, got ", type_name_at(L, -1)));
  }
  lua_pop(L, 1);

  std::unique_ptr<Tokenizer> owned_tok;
  const Tokenizer* tok = nullptr;
  lua_getfield(L, 1, "tokenizer");
  Tokenizer* tok_ud = test_tokenizer(L, -1);
  const int tok_type = lua_type(L, -1);
  std::string tok_path = tok_type == LUA_TSTRING ? lua_tostring(L, -1) : model_dir;
  std::string tok_got = type_name_at(L, -1);
  lua_pop(L, 1);
  if (tok_ud) {
    tok = tok_ud;
  } else if (tok_type == LUA_TSTRING || (tok_type == LUA_TNIL && !model_dir.empty())) {
    owned_tok = load_tokenizer(tok_path);
    tok = owned_tok.get();
  } else if (tok_type == LUA_TNIL) {
    field_error(L, "tokenizer", "required when model is a model object");
  } else {
    field_error(L, "tokenizer", "path or tokenizer expected, got " + tok_got);
  }

  eval::check_benchmarks(o);  // before any weights are read
  if (!model) {
    std::string device = string_field(L, "device", torch::cuda::is_available() ? "cuda" : "cpu");
    std::string dtype = string_field(L, "dtype", device.rfind("cuda", 0) == 0 ? "bfloat16" : "float32");
    loaded = model::load_decoder(model_dir, model::parse_dtype(dtype), torch::Device(device));
    model = &loaded;
    o.model_label = std::filesystem::weakly_canonical(model_dir).string();
  }
  const bool was_training = (*model)->is_training();
  (*model)->eval();
  std::vector<eval::EvalSummary> summaries;
  std::vector<eval::GenerationStats> stats;
  try {
    summaries = eval::evaluate_model(*model, *tok, o, &stats);
  } catch (...) {
    if (was_training) (*model)->train();
    throw;
  }
  if (was_training) (*model)->train();

  lua_createtable(L, 0, static_cast<int>(summaries.size()));
  for (size_t i = 0; i < summaries.size(); ++i) {
    const eval::EvalSummary& s = summaries[i];
    push_metrics(L, s.overall);
    lua_pushnumber(L, stats[i].seconds);
    lua_setfield(L, -2, "seconds");
    lua_pushinteger(L, stats[i].generated_tokens);
    lua_setfield(L, -2, "generated_tokens");
    lua_pushinteger(L, s.samples);
    lua_setfield(L, -2, "samples");
    lua_pushinteger(L, s.resumed_problems);
    lua_setfield(L, -2, "resumed_problems");
    push_groups(L, s.by_level, "by_level");
    push_groups(L, s.by_subject, "by_subject");
    lua_setfield(L, -2, s.benchmark.c_str());
  }
  return 1;
}

int pass_at_k(lua_State* L) {
  const char* f = "mathrl.eval.pass_at_k";
  long long n = arg_integer(L, 1, f), c = arg_integer(L, 2, f), k = arg_integer(L, 3, f);
  if (n < 1) arg_error(L, 1, f, "n must be >= 1");
  if (c < 0 || c > n) arg_error(L, 2, f, str("c must be in 0..n (0..", n, ")"));
  if (k < 1 || k > n) arg_error(L, 3, f, str("k must be in 1..n (1..", n, ")"));
  lua_pushnumber(L, eval::pass_at_k(static_cast<int>(n), static_cast<int>(c), static_cast<int>(k)));
  return 1;
}

int grade(lua_State* L) {
  const char* f = "mathrl.eval.grade";
  std::string output = arg_string(L, 1, f), gold = arg_string(L, 2, f);
  GradeResult r = mathrl::grade(output, gold);
  lua_pushboolean(L, r.equal);
  for (const auto& a : {r.pred_answer, r.gold_answer}) {
    if (a) lua_pushlstring(L, a->data(), a->size());
    else lua_pushnil(L);
  }
  return 3;
}

const luaL_Reg functions[] = {
    {"run", trampoline<run>},
    {"pass_at_k", trampoline<pass_at_k>},
    {"grade", trampoline<grade>},
    {nullptr, nullptr},
};

}  // namespace

int open_eval_module(lua_State* L) {
  luaL_newlib(L, functions);
  return 1;
}

}  // namespace mathrl::lua
