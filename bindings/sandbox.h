// Sandboxed Lua states for user code that runs per sample (rewards, advantage functions, filters).
// Modelled on Redis scripting: allow-listed libraries only (no io, os, package, debug, dofile,
// loadfile, string.dump; `load` is text-only), an instruction budget enforced by a count hook that
// keeps raising once exceeded (so a pcall inside the script cannot swallow it), a counting allocator
// that caps memory, and math.random seeded by the runtime.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "lua_host.h"

namespace mathrl::lua {

struct SandboxLimits {
  uint64_t instruction_budget = 20'000'000;  // Lua VM instructions per call (roughly 0.1 s)
  size_t memory_cap = 64u << 20;             // bytes the state may hold, code and data together
  uint64_t seed = 0;                         // math.random seed
};

enum class CallStatus { Ok, Error, Timeout, OutOfMemory };
const char* call_status_name(CallStatus s);

struct CallResult {
  CallStatus status = CallStatus::Ok;
  std::string error;  // message with traceback when status != Ok
  bool ok() const { return status == CallStatus::Ok; }
};

class Sandbox {
 public:
  // `module_dirs`: where the sandboxed `require` may load `name.lua` from (text only).
  explicit Sandbox(const SandboxLimits& limits, std::vector<std::string> module_dirs = {});
  ~Sandbox();
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;

  lua_State* L() const { return L_; }
  const SandboxLimits& limits() const { return limits_; }

  // Runs a chunk under the limits and leaves `nresults` values on the stack. Throws RecipeError
  // (syntax error, runtime error, budget or cap exceeded) naming `chunkname`.
  void run_chunk(const std::string& code, const std::string& chunkname, int nresults);
  void run_file(const std::string& path, int nresults);

  // Calls the function below `nargs` arguments under the limits. On Ok, `nresults` values are on
  // the stack; otherwise the function and arguments are popped and nothing is pushed.
  CallResult call(int nargs, int nresults);

  void reseed(uint64_t seed);
  size_t memory_used() const { return alloc_.used; }
  uint64_t instructions_last_call() const { return instructions_; }

 private:
  struct Allocator {
    size_t used = 0;
    size_t cap = 0;
    bool cap_hit = false;
    bool enforce = true;
  };
  static void* allocate(void* ud, void* ptr, size_t osize, size_t nsize);
  static void count_hook(lua_State* L, lua_Debug* ar);
  void open_allowed_libraries();
  static int sandboxed_require(lua_State* L);
  static int sandboxed_print(lua_State* L);

  SandboxLimits limits_;
  std::vector<std::string> module_dirs_;
  Allocator alloc_;
  lua_State* L_ = nullptr;
  uint64_t instructions_ = 0;
  bool timed_out_ = false;
};

// A fixed set of sandboxes, each prepared by the same setup function, for running per-sample
// callbacks on several threads. rebuild() replaces every state with a fresh one (hot reload).
class SandboxPool {
 public:
  using Setup = std::function<void(Sandbox&)>;
  SandboxPool(size_t count, SandboxLimits limits, Setup setup, std::vector<std::string> module_dirs = {});

  class Lease {
   public:
    Lease(SandboxPool& pool, size_t index) : pool_(&pool), index_(index) {}
    Lease(Lease&& other) noexcept : pool_(other.pool_), index_(other.index_) { other.pool_ = nullptr; }
    ~Lease();
    Sandbox& operator*() const { return *pool_->states_[index_]; }
    Sandbox* operator->() const { return pool_->states_[index_].get(); }
    size_t index() const { return index_; }

   private:
    SandboxPool* pool_;
    size_t index_;
  };

  Lease acquire();  // blocks until a sandbox is free
  size_t size() const { return states_.size(); }

  // Runs fn(sandbox, i) for i in [0, count) on size() threads, each thread holding one sandbox.
  // The first exception thrown by fn is rethrown after all threads finish.
  void parallel_for(size_t count, const std::function<void(Sandbox&, size_t)>& fn);

  // Replaces every state with a fresh one built by `setup` (throws, leaving the pool unchanged, if
  // setup fails on the first new state).
  void rebuild(Setup setup);

 private:
  std::vector<std::unique_ptr<Sandbox>> build_states(const Setup& setup) const;
  size_t count_;
  SandboxLimits limits_;
  std::vector<std::string> module_dirs_;
  std::vector<std::unique_ptr<Sandbox>> states_;
  std::vector<bool> busy_;
  std::mutex mutex_;
  std::condition_variable freed_;
};

}  // namespace mathrl::lua
