#include "reward/reward_host.h"

#include "lua_json.h"

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <mutex>

#include "common/error.h"
#include "common/jsonl.h"
#include "common/strings.h"

namespace mathrl::reward_lua {

namespace {

constexpr const char* kRewardsKey = "mathrl.reward_functions";  // registry: array of reward functions
constexpr int kMaxRecordDepth = 64;

std::atomic<uint64_t> g_sighup{0};
extern "C" void on_sighup(int) { g_sighup.fetch_add(1, std::memory_order_relaxed); }

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// One math.random stream per (seed, step, sample, reward): independent of which thread runs it.
uint64_t call_seed(uint64_t seed, long long step, size_t index, size_t reward) {
  uint64_t h = splitmix64(seed);
  h = splitmix64(h ^ static_cast<uint64_t>(step));
  h = splitmix64(h ^ static_cast<uint64_t>(index));
  return splitmix64(h ^ static_cast<uint64_t>(reward)) >> 1;  // keep it a positive lua_Integer
}

// ---- pushing a sample (runs inside a protected call: table creation may hit the memory cap) ----

void push_ids(lua_State* L, const std::vector<int64_t>& ids) {
  lua_createtable(L, static_cast<int>(ids.size()), 0);
  for (size_t i = 0; i < ids.size(); ++i) {
    lua_pushinteger(L, static_cast<lua_Integer>(ids[i]));
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
}

struct SampleArgs {
  const Sample* sample;
  long long step;
  size_t index;
};

// Only trivially destructible locals here: a memory error longjmps out of this function.
int push_sample(lua_State* L) {
  const auto* a = static_cast<const SampleArgs*>(lua_touserdata(L, 1));
  const Sample& s = *a->sample;
  lua_createtable(L, 0, 9);
  lua_pushlstring(L, s.prompt.data(), s.prompt.size());
  lua_setfield(L, -2, "prompt");
  lua_pushlstring(L, s.completion.data(), s.completion.size());
  lua_setfield(L, -2, "completion");
  lua_pushlstring(L, s.reference.data(), s.reference.size());
  lua_setfield(L, -2, "reference");
  push_ids(L, s.prompt_ids);
  lua_setfield(L, -2, "prompt_ids");
  push_ids(L, s.completion_ids);
  lua_setfield(L, -2, "completion_ids");
  if (s.record) lua::push_json(L, *s.record, kMaxRecordDepth);
  else lua_newtable(L);
  lua_setfield(L, -2, "record");
  lua_pushinteger(L, static_cast<lua_Integer>(a->step));
  lua_setfield(L, -2, "step");
  lua_pushinteger(L, static_cast<lua_Integer>(a->index + 1));  // 1-based, as Lua arrays
  lua_setfield(L, -2, "index");
  return 1;
}

// Reads the result on top of the stack (number, or table of string -> number) into `out`.
// Returns "" or what is wrong with it. Leaves the stack unchanged.
std::string read_result(lua_State* L, std::map<std::string, double>& parts, double& value, bool& is_table) {
  int t = lua_type(L, -1);
  if (t == LUA_TNUMBER) {
    value = lua_tonumber(L, -1);
    is_table = false;
    if (!std::isfinite(value)) return str("returned a non-finite number (", value, ")");
    return "";
  }
  if (t != LUA_TTABLE) return str("returned a ", luaL_typename(L, -1), "; expected a number or a table of numbers");
  is_table = true;
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TNUMBER) {
      std::string why = str("returned a table with a ", luaL_typename(L, -2), " key holding a ",
                            luaL_typename(L, -1), "; expected string keys and number values");
      lua_pop(L, 2);
      return why;
    }
    size_t n = 0;
    const char* k = lua_tolstring(L, -2, &n);
    double v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (!std::isfinite(v)) {
      lua_pop(L, 1);
      return str("returned a non-finite number for '", std::string(k, n), "'");
    }
    parts[std::string(k, n)] = v;
  }
  value = 0;
  for (const auto& [k, v] : parts) value += v;  // sorted order: the same sum on every state
  return "";
}

bool stat_file(const std::string& path, long long& mtime_ns, long long& size) {
  std::error_code ec;
  auto t = std::filesystem::last_write_time(path, ec);
  if (ec) return false;
  auto sz = std::filesystem::file_size(path, ec);
  if (ec) return false;
  mtime_ns = static_cast<long long>(std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count());
  size = static_cast<long long>(sz);
  return true;
}

void default_sink(const RewardEvent& e) {
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  std::fprintf(stderr, "[reward] %s: %s\n", event_kind_name(e.kind), e.message.c_str());
}

}  // namespace

// ---- small public helpers ----------------------------------------------------------------------

uint64_t fnv1a64(std::string_view data) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

void install_sighup_handler() {
  struct sigaction sa {};
  sa.sa_handler = on_sighup;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGHUP, &sa, nullptr);
}

uint64_t sighup_count() { return g_sighup.load(std::memory_order_relaxed); }

const char* event_kind_name(RewardEvent::Kind k) {
  switch (k) {
    case RewardEvent::Kind::CallFailed: return "call failed";
    case RewardEvent::Kind::SwapApplied: return "swap applied";
    case RewardEvent::Kind::SwapRejected: return "swap rejected";
  }
  return "?";
}

long long RewardStats::count(const std::string& reward, lua::CallStatus s) const {
  auto r = counts.find(reward);
  if (r == counts.end()) return 0;
  auto c = r->second.find(lua::call_status_name(s));
  return c == r->second.end() ? 0 : c->second;
}

std::shared_ptr<const rapidjson::Document> parse_record(std::string_view json, const std::string& where) {
  return std::make_shared<rapidjson::Document>(parse_json(json, where));
}

std::map<std::string, double> summarize(const std::vector<RewardResult>& results, const std::vector<RewardSpec>& specs) {
  std::map<std::string, double> out;
  if (results.empty()) return out;
  std::map<std::string, size_t> seen;  // table components may be missing from some samples
  double total = 0;
  for (const auto& r : results) {
    total += r.total;
    for (const auto& [k, v] : r.components) {
      out["reward/" + k] += v;
      ++seen[k];
    }
    for (size_t j = 0; j < r.rewards.size() && j < specs.size(); ++j)
      if (!r.rewards[j].ok())
        out[str("reward_failures/", specs[j].name, "/", lua::call_status_name(r.rewards[j].status))] += 1;
  }
  for (const auto& [k, n] : seen) out["reward/" + k] /= static_cast<double>(n);
  out["reward/total"] = total / static_cast<double>(results.size());
  return out;
}

// ---- host --------------------------------------------------------------------------------------

RewardHost::RewardHost(std::vector<RewardSpec> specs, RewardHostOptions options)
    : specs_(std::move(specs)), options_(std::move(options)), sink_(default_sink) {
  if (specs_.empty()) throw RecipeError("rewards: at least one reward is needed");
  if (!options_.grader.equal || !options_.grader.extract) options_.grader = default_grader();
  std::vector<std::string> names;
  for (const auto& s : specs_) {
    if (s.name.empty()) throw RecipeError("rewards: every reward needs a name");
    if (std::find(names.begin(), names.end(), s.name) != names.end())
      throw RecipeError(str("rewards: the name '", s.name, "' is used twice"));
    names.push_back(s.name);
    if (!std::isfinite(s.weight) || !std::isfinite(s.on_error))
      throw RecipeError(str("reward '", s.name, "': weight and on_error must be finite numbers"));
  }
  files_.resize(specs_.size());
  for (size_t i = 0; i < specs_.size(); ++i) {
    const auto& spec = specs_[i];
    if (!spec.file.empty()) {
      auto& f = files_[i];
      if (!stat_file(spec.file, f.mtime_ns, f.size))
        throw RecipeError(str("reward '", spec.name, "': cannot read file ", spec.file));
    }
    sources_.push_back(source_of(spec));
    if (!spec.file.empty()) files_[i].hash = files_[i].seen_hash = fnv1a64(sources_.back());
  }
  pool_ = build_pool(sources_);
  sighup_seen_ = sighup_count();
}

RewardHost::~RewardHost() = default;

void RewardHost::set_event_sink(EventSink sink) { sink_ = sink ? std::move(sink) : EventSink(default_sink); }

void RewardHost::emit(const RewardEvent& e) { sink_(e); }

std::vector<std::string> RewardHost::file_hashes() const {
  std::vector<std::string> out;
  for (size_t i = 0; i < specs_.size(); ++i) out.push_back(specs_[i].file.empty() ? "" : hex64(files_[i].hash));
  return out;
}

std::string RewardHost::source_of(const RewardSpec& spec) const {
  if (!spec.file.empty()) return read_file(spec.file);
  if (!spec.code.empty()) return spec.code;
  if (!spec.builtin.empty())
    return str("return require('rewards').builtin('", spec.builtin, "', ", spec.options_lua.empty() ? "{}" : spec.options_lua,
               ")");
  throw RecipeError(str("reward '", spec.name, "': give one of file, code or builtin"));
}

void RewardHost::setup_sandbox(lua::Sandbox& sb, const std::vector<std::string>& sources) const {
  lua_State* L = sb.L();
  open_grader_module(L, &options_.grader);
  lua_createtable(L, static_cast<int>(specs_.size()), 0);
  for (size_t i = 0; i < specs_.size(); ++i) {
    const auto& spec = specs_[i];
    std::string what = str("reward '", spec.name, "'");
    std::string chunkname = spec.file.empty() ? "=" + what : "@" + spec.file;
    const std::string& code = sources[i];
    if (luaL_loadbufferx(L, code.data(), code.size(), chunkname.c_str(), "t") != LUA_OK) {
      std::string msg = lua_tostring(L, -1) ? lua_tostring(L, -1) : "cannot load";
      lua_pop(L, 2);
      throw RecipeError(str(what, ": ", msg));
    }
    // Each reward gets its own globals (reading through to the shared ones), so two files may
    // both define `reward`.
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushglobaltable(L);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    int env = lua_gettop(L) - 2;  // a copy of env goes below the chunk, the other becomes its _ENV
    lua_insert(L, env);
    lua_setupvalue(L, -2, 1);
    lua::CallResult r = sb.call(0, 1);
    if (!r.ok()) {
      lua_pop(L, 2);
      throw RecipeError(str(what, ": ", r.error));
    }
    if (lua_istable(L, -1)) {
      lua_getfield(L, -1, spec.fn.c_str());
      lua_remove(L, -2);
    } else if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_getfield(L, env, spec.fn.c_str());
    }
    if (!lua_isfunction(L, -1)) {
      std::string got = luaL_typename(L, -1);
      lua_pop(L, 3);
      throw RecipeError(str(what, ": the code must return a function, return a table holding '", spec.fn,
                            "', or define a global function '", spec.fn, "' (got ", got, ")"));
    }
    lua_remove(L, env);
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  lua_setfield(L, LUA_REGISTRYINDEX, kRewardsKey);
}

std::unique_ptr<lua::SandboxPool> RewardHost::build_pool(const std::vector<std::string>& sources) const {
  return std::make_unique<lua::SandboxPool>(
      std::max<size_t>(1, options_.threads), options_.limits,
      [this, &sources](lua::Sandbox& sb) { setup_sandbox(sb, sources); }, options_.module_dirs);
}

void RewardHost::score_one(lua::Sandbox& sb, const Sample& s, long long step, size_t index, RewardResult& out,
                           const std::vector<size_t>& which) const {
  lua_State* L = sb.L();
  out.rewards.assign(specs_.size(), RewardOutcome{});
  SampleArgs args{&s, step, index};
  lua_pushcfunction(L, push_sample);
  lua_pushlightuserdata(L, &args);
  lua::CallResult pushed = sb.call(1, 1);
  for (size_t j : which) {
    const RewardSpec& spec = specs_[j];
    RewardOutcome& o = out.rewards[j];
    std::map<std::string, double> parts;
    bool is_table = false;
    if (!pushed.ok()) {
      o.status = pushed.status;
      o.error = "building the sample table failed: " + pushed.error;
    } else {
      sb.reseed(call_seed(options_.limits.seed, step, index, j));
      lua_getfield(L, LUA_REGISTRYINDEX, kRewardsKey);
      lua_rawgeti(L, -1, static_cast<lua_Integer>(j + 1));
      lua_remove(L, -2);
      lua_pushvalue(L, -2);  // the sample
      lua::CallResult r = sb.call(1, 1);
      if (!r.ok()) {
        o.status = r.status;
        o.error = r.error;
      } else {
        std::string bad = read_result(L, parts, o.value, is_table);
        lua_pop(L, 1);
        if (!bad.empty()) {
          o.status = lua::CallStatus::Error;
          o.error = str("reward '", spec.name, "' ", bad);
        }
      }
    }
    if (!o.ok()) {
      o.value = spec.on_error;
      parts.clear();
      is_table = false;
    }
    out.components[spec.name] = o.value;
    for (const auto& [k, v] : parts) out.components[spec.name + "/" + k] = v;
    out.total += spec.weight * o.value;
  }
  if (pushed.ok()) lua_pop(L, 1);
}

std::vector<RewardResult> RewardHost::score(const std::vector<Sample>& samples, long long step) {
  std::vector<RewardResult> results(samples.size());
  std::vector<size_t> all(specs_.size());
  for (size_t j = 0; j < all.size(); ++j) all[j] = j;
  pool_->parallel_for(samples.size(), [&](lua::Sandbox& sb, size_t i) {
    score_one(sb, samples[i], step, i, results[i], all);
  });
  // Counting and reporting happen here, on the caller's thread, in sample order.
  size_t logged = 0, failed = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    for (size_t j = 0; j < specs_.size(); ++j) {
      const RewardOutcome& o = results[i].rewards[j];
      ++stats_.counts[specs_[j].name][lua::call_status_name(o.status)];
      if (o.ok()) continue;
      ++failed;
      if (logged++ >= options_.max_failures_logged) continue;
      RewardEvent e{RewardEvent::Kind::CallFailed, specs_[j].name, specs_[j].file, "", step, i, o.status, ""};
      e.message = str("reward '", specs_[j].name, "' ", lua::call_status_name(o.status), " on sample ", i,
                      " at step ", step, " (scored ", specs_[j].on_error, "): ", o.error);
      emit(e);
    }
  }
  if (logged > options_.max_failures_logged) {
    RewardEvent e{RewardEvent::Kind::CallFailed, "", "", "", step, 0, lua::CallStatus::Error, ""};
    e.message = str(failed - options_.max_failures_logged, " more failed reward calls at step ", step,
                    " not shown (see the counts in the metrics)");
    emit(e);
  }
  for (size_t i = 0; i < samples.size(); ++i) {
    cache_.push_back({samples[i], {step, i}});
    if (cache_.size() > options_.trial_samples) cache_.pop_front();
  }
  return results;
}

bool RewardHost::check_for_updates(long long step) {
  uint64_t hup = sighup_count();
  bool forced = hup != sighup_seen_;
  sighup_seen_ = hup;
  std::vector<std::string> candidate = sources_;
  std::vector<size_t> changed;
  std::vector<uint64_t> new_hash(specs_.size(), 0);
  std::string read_failure;
  for (size_t i = 0; i < specs_.size(); ++i) {
    const auto& spec = specs_[i];
    if (spec.file.empty()) continue;
    FileState& f = files_[i];
    long long mtime = -1, size = -1;
    bool exists = stat_file(spec.file, mtime, size);
    if (!forced && exists && mtime == f.mtime_ns && size == f.size) continue;
    if (!exists) {
      if (f.mtime_ns != -1) {
        RewardEvent e{RewardEvent::Kind::SwapRejected, spec.name, spec.file, hex64(f.hash), step, 0,
                      lua::CallStatus::Error, ""};
        e.message = str("reward file ", spec.file, " cannot be read at step ", step, "; keeping the running version (fnv1a64 ",
                        hex64(f.hash), ")");
        emit(e);
        ++stats_.rejected_swaps;
      }
      f.mtime_ns = f.size = -1;
      continue;
    }
    f.mtime_ns = mtime;
    f.size = size;
    std::string code;
    try {
      code = read_file(spec.file);
    } catch (const std::exception&) {
      f.mtime_ns = -1;  // retry next time
      continue;
    }
    uint64_t h = fnv1a64(code);
    if (h == f.seen_hash && !forced) continue;  // touched but unchanged, or already rejected
    f.seen_hash = h;
    if (h == f.hash) continue;
    candidate[i] = std::move(code);
    new_hash[i] = h;
    changed.push_back(i);
  }
  if (changed.empty()) return false;

  auto report = [&](RewardEvent::Kind kind, const std::string& why) {
    for (size_t i : changed) {
      RewardEvent e{kind, specs_[i].name, specs_[i].file, hex64(new_hash[i]), step, 0, lua::CallStatus::Ok, ""};
      if (kind == RewardEvent::Kind::SwapApplied)
        e.message = str("reward '", specs_[i].name, "' reloaded from ", specs_[i].file, " at step ", step,
                        " (fnv1a64 ", hex64(new_hash[i]), ", was ", hex64(files_[i].hash), ")");
      else
        e.message = str("reward '", specs_[i].name, "': new version of ", specs_[i].file, " (fnv1a64 ", hex64(new_hash[i]),
                        ") rejected at step ", step, "; keeping the running version (fnv1a64 ", hex64(files_[i].hash),
                        "): ", why);
      emit(e);
    }
  };

  std::unique_ptr<lua::SandboxPool> fresh;
  try {
    fresh = build_pool(candidate);
  } catch (const std::exception& e) {
    ++stats_.rejected_swaps;
    report(RewardEvent::Kind::SwapRejected, str("it does not load: ", e.what()));
    return false;
  }
  // Trial: the changed rewards on the last scored samples, in the fresh states.
  std::vector<RewardResult> trial(cache_.size());
  std::vector<const std::pair<Sample, std::pair<long long, size_t>>*> cached;
  for (const auto& c : cache_) cached.push_back(&c);
  fresh->parallel_for(cached.size(), [&](lua::Sandbox& sb, size_t i) {
    score_one(sb, cached[i]->first, cached[i]->second.first, cached[i]->second.second, trial[i], changed);
  });
  for (size_t i = 0; i < trial.size(); ++i)
    for (size_t j : changed) {
      const RewardOutcome& o = trial[i].rewards[j];
      if (o.ok()) continue;
      ++stats_.rejected_swaps;
      report(RewardEvent::Kind::SwapRejected,
             str("it failed (", lua::call_status_name(o.status), ") on cached sample ", cached[i]->second.second,
                 " of step ", cached[i]->second.first, ": ", o.error));
      return false;
    }
  report(RewardEvent::Kind::SwapApplied, "");
  pool_ = std::move(fresh);
  sources_ = std::move(candidate);
  for (size_t i : changed) files_[i].hash = new_hash[i];
  ++stats_.swaps;
  return true;
}

}  // namespace mathrl::reward_lua
