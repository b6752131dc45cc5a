#include "sandbox.h"

#include <cctype>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "common/error.h"

namespace mathrl::lua {

namespace {

constexpr int kHookInterval = 1000;  // instructions between budget checks

Sandbox* owner(lua_State* L) { return *static_cast<Sandbox**>(lua_getextraspace(L)); }

// The require() seen by sandboxed code: only text modules from the allowed directories, cached.
const char* kPrelude = R"lua(
local find_module, raw_load = ...
local loaded = {}
function require(name)
  local v = loaded[name]
  if v ~= nil then return v end
  local chunk = find_module(name)
  v = chunk(name)
  if v == nil then v = true end
  loaded[name] = v
  return v
end
function load(chunk, chunkname, mode, env)
  return raw_load(chunk, chunkname, "t", env)
end
-- Lua runs message handlers and __gc finalizers with hooks disabled, which would let them escape
-- the instruction budget. So xpcall calls its handler after unwinding, under the budget, and
-- metatables may not carry __gc.
local raw_pcall, raw_setmetatable, raw_rawget, pack, unpack = pcall, setmetatable, rawget, table.pack, table.unpack
function xpcall(f, handler, ...)
  local r = pack(raw_pcall(f, ...))
  if r[1] then return unpack(r, 1, r.n) end
  return false, handler(r[2])
end
function setmetatable(t, mt)
  if type(mt) == "table" and raw_rawget(mt, "__gc") ~= nil then
    error("__gc metamethods are not allowed in the sandbox", 2)
  end
  return raw_setmetatable(t, mt)
end
)lua";

bool valid_module_name(const std::string& name) {
  if (name.empty() || name.size() > 200) return false;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-')) return false;
  return name.find("..") == std::string::npos && name.front() != '.';
}

}  // namespace

const char* call_status_name(CallStatus s) {
  switch (s) {
    case CallStatus::Ok: return "ok";
    case CallStatus::Error: return "error";
    case CallStatus::Timeout: return "timeout";
    case CallStatus::OutOfMemory: return "out of memory";
  }
  return "?";
}

void* Sandbox::allocate(void* ud, void* ptr, size_t osize, size_t nsize) {
  auto* a = static_cast<Allocator*>(ud);
  if (ptr == nullptr) osize = 0;  // osize then encodes the object's type, not a size
  if (nsize == 0) {
    std::free(ptr);
    a->used -= osize;
    return nullptr;
  }
  if (a->enforce && nsize > osize && a->used - osize + nsize > a->cap) {
    a->cap_hit = true;
    return nullptr;  // Lua raises "not enough memory"
  }
  void* p = std::realloc(ptr, nsize);
  if (p == nullptr) return nullptr;
  a->used = a->used - osize + nsize;
  return p;
}

void Sandbox::count_hook(lua_State* L, lua_Debug*) {
  Sandbox* sb = owner(L);
  sb->instructions_ += kHookInterval;
  if (sb->timed_out_ || sb->instructions_ > sb->limits_.instruction_budget) {
    sb->timed_out_ = true;
    // From now on every instruction raises, so a pcall in the script cannot carry on.
    lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
    luaL_error(L, "instruction budget exceeded (%I instructions)", (lua_Integer)sb->limits_.instruction_budget);
  }
}

int Sandbox::sandboxed_print(lua_State* L) {
  int n = lua_gettop(L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addstring(&b, "[lua] ");
  for (int i = 1; i <= n; ++i) {
    if (i > 1) luaL_addchar(&b, '\t');
    luaL_tolstring(L, i, nullptr);
    luaL_addvalue(&b);
  }
  luaL_addchar(&b, '\n');
  luaL_pushresult(&b);
  std::fputs(lua_tostring(L, -1), stderr);
  return 0;
}

// find_module(name) -> the loaded chunk; errors when the name is invalid or not found.
int Sandbox::sandboxed_require(lua_State* L) {
  std::string name = arg_string(L, 1, "require");
  if (!valid_module_name(name)) arg_error(L, 1, "require", "invalid module name '" + name + "'");
  std::string rel = name;
  for (char& c : rel)
    if (c == '.') c = '/';
  std::string tried;
  for (const auto& dir : owner(L)->module_dirs_) {
    std::string path = dir + "/" + rel + ".lua";
    if (!std::filesystem::is_regular_file(path)) {
      tried += "\n\tno file '" + path + "'";
      continue;
    }
    if (luaL_loadfilex(L, path.c_str(), "t") != LUA_OK) throw RecipeError(lua_tostring(L, -1));
    return 1;
  }
  throw RecipeError("module '" + name + "' not found in the sandbox's module directories:" + tried);
}

Sandbox::Sandbox(const SandboxLimits& limits, std::vector<std::string> module_dirs)
    : limits_(limits), module_dirs_(std::move(module_dirs)) {
  alloc_.cap = limits_.memory_cap;
  L_ = lua_newstate(&Sandbox::allocate, &alloc_);
  if (!L_) throw Error("cannot create a sandboxed Lua state");
  *static_cast<Sandbox**>(lua_getextraspace(L_)) = this;
  alloc_.enforce = false;  // the standard libraries themselves never count against a small cap
  open_allowed_libraries();
  alloc_.enforce = true;
  reseed(limits_.seed);
}

Sandbox::~Sandbox() {
  if (L_) lua_close(L_);
}

void Sandbox::open_allowed_libraries() {
  static const luaL_Reg libs[] = {
      {LUA_GNAME, luaopen_base},        {LUA_STRLIBNAME, luaopen_string}, {LUA_TABLIBNAME, luaopen_table},
      {LUA_MATHLIBNAME, luaopen_math},  {LUA_UTF8LIBNAME, luaopen_utf8},  {LUA_COLIBNAME, luaopen_coroutine},
      {nullptr, nullptr},
  };
  for (const luaL_Reg* lib = libs; lib->func; ++lib) {
    luaL_requiref(L_, lib->name, lib->func, 1);
    lua_pop(L_, 1);
  }
  // Remove what reaches the file system or produces/loads bytecode.
  for (const char* name : {"dofile", "loadfile", "require"}) {
    lua_pushnil(L_);
    lua_setglobal(L_, name);
  }
  lua_getglobal(L_, "string");
  lua_pushnil(L_);
  lua_setfield(L_, -2, "dump");
  lua_pop(L_, 1);
  // `package` is not opened, so package.loadlib and C modules are out of reach.
  lua_pushcfunction(L_, trampoline<sandboxed_print>);
  lua_setglobal(L_, "print");
  if (luaL_loadbufferx(L_, kPrelude, std::strlen(kPrelude), "=sandbox prelude", "t") != LUA_OK)
    throw Error(lua_tostring(L_, -1));
  lua_pushcfunction(L_, trampoline<sandboxed_require>);
  lua_getglobal(L_, "load");
  protected_call(L_, 2, 0, "sandbox prelude");
}

void Sandbox::reseed(uint64_t seed) {
  lua_getglobal(L_, "math");
  lua_getfield(L_, -1, "randomseed");
  lua_pushinteger(L_, static_cast<lua_Integer>(seed));
  lua_pcall(L_, 1, 0, 0);
  lua_pop(L_, 1);
}

void Sandbox::run_chunk(const std::string& code, const std::string& chunkname, int nresults) {
  if (luaL_loadbufferx(L_, code.data(), code.size(), chunkname.c_str(), "t") != LUA_OK) {
    std::string msg = lua_tostring(L_, -1) ? lua_tostring(L_, -1) : "cannot load chunk";
    lua_pop(L_, 1);
    throw RecipeError(msg);
  }
  CallResult r = call(0, nresults);
  if (!r.ok()) throw RecipeError(r.error);
}

void Sandbox::run_file(const std::string& path, int nresults) {
  if (luaL_loadfilex(L_, path.c_str(), "t") != LUA_OK) {
    std::string msg = lua_tostring(L_, -1) ? lua_tostring(L_, -1) : "cannot load file";
    lua_pop(L_, 1);
    throw RecipeError(msg);
  }
  CallResult r = call(0, nresults);
  if (!r.ok()) throw RecipeError(r.error);
}

namespace {
// The message handler must be able to build a traceback even when the cap was what failed.
int sandbox_message_handler(lua_State* L) {
  Sandbox* sb = owner(L);
  (void)sb;
  return traceback_handler(L);
}
}  // namespace

CallResult Sandbox::call(int nargs, int nresults) {
  instructions_ = 0;
  timed_out_ = false;
  alloc_.cap_hit = false;
  int base = lua_gettop(L_) - nargs;
  alloc_.enforce = false;
  lua_pushcfunction(L_, sandbox_message_handler);
  lua_insert(L_, base);
  alloc_.enforce = true;
  lua_sethook(L_, count_hook, LUA_MASKCOUNT, kHookInterval);
  int status = lua_pcall(L_, nargs, nresults, base);
  lua_sethook(L_, nullptr, 0, 0);
  alloc_.enforce = false;  // reporting must not fail for lack of memory
  lua_remove(L_, base);
  CallResult r;
  if (timed_out_) r.status = CallStatus::Timeout;
  else if (alloc_.cap_hit) r.status = CallStatus::OutOfMemory;
  else if (status != LUA_OK) r.status = CallStatus::Error;
  if (status != LUA_OK) {
    r.error = lua_tostring(L_, -1) ? lua_tostring(L_, -1) : "(error object is not a string)";
    lua_pop(L_, 1);
  } else if (r.status != CallStatus::Ok) {
    lua_pop(L_, nresults == LUA_MULTRET ? lua_gettop(L_) - base + 1 : nresults);
  }
  if (r.status == CallStatus::Timeout)
    r.error = "instruction budget exceeded (" + std::to_string(limits_.instruction_budget) + " instructions)" +
              (status == LUA_OK ? " (the script caught the error and went on)" : "") +
              (r.error.empty() ? "" : ": " + r.error);
  if (r.status == CallStatus::OutOfMemory) {
    r.error = "memory cap of " + std::to_string(limits_.memory_cap) + " bytes exceeded" +
              (r.error.empty() ? "" : ": " + r.error);
    lua_gc(L_, LUA_GCCOLLECT);
  }
  alloc_.enforce = true;
  return r;
}

// ---- pool ------------------------------------------------------------------------------------

SandboxPool::SandboxPool(size_t count, SandboxLimits limits, Setup setup, std::vector<std::string> module_dirs)
    : count_(count == 0 ? 1 : count), limits_(limits), module_dirs_(std::move(module_dirs)) {
  states_ = build_states(setup);
  busy_.assign(states_.size(), false);
}

std::vector<std::unique_ptr<Sandbox>> SandboxPool::build_states(const Setup& setup) const {
  std::vector<std::unique_ptr<Sandbox>> states;
  for (size_t i = 0; i < count_; ++i) {
    SandboxLimits l = limits_;
    l.seed = limits_.seed + i;  // distinct streams per state, reproducible for a fixed seed
    states.push_back(std::make_unique<Sandbox>(l, module_dirs_));
    if (setup) setup(*states.back());
  }
  return states;
}

SandboxPool::Lease::~Lease() {
  if (!pool_) return;
  {
    std::lock_guard<std::mutex> lock(pool_->mutex_);
    pool_->busy_[index_] = false;
  }
  pool_->freed_.notify_one();
}

SandboxPool::Lease SandboxPool::acquire() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    for (size_t i = 0; i < busy_.size(); ++i)
      if (!busy_[i]) {
        busy_[i] = true;
        return Lease(*this, i);
      }
    freed_.wait(lock);
  }
}

void SandboxPool::parallel_for(size_t count, const std::function<void(Sandbox&, size_t)>& fn) {
  std::atomic<size_t> next{0};
  std::exception_ptr first_error;
  std::mutex error_mutex;
  auto worker = [&] {
    Lease lease = acquire();
    for (size_t i; (i = next.fetch_add(1)) < count;) {
      try {
        fn(*lease, i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!first_error) first_error = std::current_exception();
        next = count;
      }
    }
  };
  size_t nthreads = std::min(states_.size(), count);
  if (nthreads <= 1) {
    worker();
  } else {
    std::vector<std::thread> threads;
    for (size_t t = 0; t < nthreads; ++t) threads.emplace_back(worker);
    for (auto& t : threads) t.join();
  }
  if (first_error) std::rethrow_exception(first_error);
}

void SandboxPool::rebuild(Setup setup) {
  auto fresh = build_states(setup);  // throws before touching the running states
  std::unique_lock<std::mutex> lock(mutex_);
  freed_.wait(lock, [&] {
    for (bool b : busy_)
      if (b) return false;
    return true;
  });
  states_ = std::move(fresh);
}

}  // namespace mathrl::lua
