// Lua reward functions for RL: several sandboxed rewards, weighted and summed, scored on a pool of
// threads, with hot-swap of reward files between steps.
//
// A reward is a Lua `function(sample) -> number | {name = number, ...}`. `sample` holds prompt,
// completion, completion_ids, prompt_ids, reference, record (the dataset record as a table), step
// and index (1-based position in the batch; messages count samples from 0). A table result logs
// each entry as "<reward>/<key>" and its sum is the reward's value. total = sum(weight * value).
// A reward that errors, runs out of budget or memory, or returns something else yields its
// `on_error` value, is counted per status and reported with its traceback.
//
// Determinism: every call reseeds math.random from (seed, step, sample index, reward index), so
// results do not depend on the thread count — as long as rewards keep no state in globals.
//
// Hot-swap: reward files are polled (mtime + size, then an FNV-1a 64-bit content hash) by
// check_for_updates(), called between steps; SIGHUP (after install_sighup_handler()) forces a hash
// check even when mtime and size look unchanged. A changed file is loaded into a fresh pool and
// tried on the last scored samples; only if that works does it replace the running version.
#pragma once
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <rapidjson/document.h>

#include "reward/grader_bridge.h"
#include "sandbox.h"

namespace mathrl::reward_lua {

struct Sample {
  std::string prompt;
  std::string completion;
  std::vector<int64_t> prompt_ids;
  std::vector<int64_t> completion_ids;
  std::string reference;  // the gold answer
  std::shared_ptr<const rapidjson::Document> record;  // may be null
};

// Parses a JSON object (a dataset line) for Sample::record. Throws DataError naming `where`.
std::shared_ptr<const rapidjson::Document> parse_record(std::string_view json, const std::string& where = "record");

struct RewardSpec {
  std::string name;
  std::string file;     // a Lua file returning a function (or a table holding `fn`), or defining global `fn`
  std::string code;     // inline code, same convention (used when file is empty)
  std::string builtin;  // a factory in recipes/lib/rewards.lua: correct, format, length
  std::string options_lua = "{}";  // Lua table literal passed to a builtin factory
  std::string fn = "reward";
  double weight = 1.0;
  double on_error = 0.0;
};

struct RewardOutcome {
  lua::CallStatus status = lua::CallStatus::Ok;
  double value = 0.0;      // the reward's value (on_error when status != Ok)
  std::string error;       // message and traceback when status != Ok
  bool ok() const { return status == lua::CallStatus::Ok; }
};

struct RewardResult {
  double total = 0.0;
  std::map<std::string, double> components;  // "<reward>" and "<reward>/<key>"
  std::vector<RewardOutcome> rewards;        // one per spec, in spec order
};

struct RewardStats {
  // counts[reward name][status name] ("ok", "error", "timeout", "out of memory").
  std::map<std::string, std::map<std::string, long long>> counts;
  long long swaps = 0;
  long long rejected_swaps = 0;
  long long count(const std::string& reward, lua::CallStatus s) const;
};

struct RewardEvent {
  enum class Kind { CallFailed, SwapApplied, SwapRejected };
  Kind kind;
  std::string reward;   // reward name (for swaps: the first reward using the file)
  std::string file;     // for swaps
  std::string hash;     // FNV-1a 64 of the file, 16 hex digits (swaps)
  long long step = 0;
  size_t sample = 0;    // CallFailed: sample index in the batch
  lua::CallStatus status = lua::CallStatus::Ok;
  std::string message;  // one human-readable line (plus the traceback / load error)
};
const char* event_kind_name(RewardEvent::Kind k);
using EventSink = std::function<void(const RewardEvent&)>;

struct RewardHostOptions {
  lua::SandboxLimits limits;        // limits.seed is the run's seed
  size_t threads = 4;
  std::vector<std::string> module_dirs;  // where `require` looks (recipes/lib for the builtins)
  size_t trial_samples = 8;         // K: cached samples a new version is tried on
  size_t max_failures_logged = 20;  // per score() call; all failures are still counted
  GraderFns grader;                 // empty = default_grader()
};

class RewardHost {
 public:
  // Loads every reward into `threads` sandboxes. Throws RecipeError when one does not load.
  RewardHost(std::vector<RewardSpec> specs, RewardHostOptions options);
  ~RewardHost();

  // Scores a batch; never throws for a misbehaving reward. Events are delivered on this thread.
  std::vector<RewardResult> score(const std::vector<Sample>& samples, long long step);

  // Polls the reward files (and the SIGHUP flag); swaps in changed versions that load and pass
  // the trial. Call between steps. Returns true when a new version was installed.
  bool check_for_updates(long long step);

  void set_event_sink(EventSink sink);  // default: lines on stderr
  const RewardStats& stats() const { return stats_; }
  const std::vector<RewardSpec>& specs() const { return specs_; }
  // Current content hash of each spec's file ("" for inline/builtin rewards).
  std::vector<std::string> file_hashes() const;

 private:
  struct FileState {
    long long mtime_ns = -1;
    long long size = -1;
    uint64_t hash = 0;         // of the running version
    uint64_t seen_hash = 0;    // of the last version examined (rejected ones too)
  };
  std::unique_ptr<lua::SandboxPool> build_pool(const std::vector<std::string>& sources) const;
  void setup_sandbox(lua::Sandbox& sb, const std::vector<std::string>& sources) const;
  void score_one(lua::Sandbox& sb, const Sample& s, long long step, size_t index, RewardResult& out,
                 const std::vector<size_t>& which) const;
  void emit(const RewardEvent& e);
  std::string source_of(const RewardSpec& spec) const;

  std::vector<RewardSpec> specs_;
  RewardHostOptions options_;
  std::vector<std::string> sources_;    // running code per spec
  std::vector<FileState> files_;        // per spec (unused for inline/builtin)
  std::unique_ptr<lua::SandboxPool> pool_;
  std::deque<std::pair<Sample, std::pair<long long, size_t>>> cache_;  // last K samples (step, index)
  RewardStats stats_;
  EventSink sink_;
  uint64_t sighup_seen_ = 0;
};

// Batch figures for the metrics file: means "reward/total" and "reward/<component>", and counts of
// failed calls "reward_failures/<name>/<status>" (present only when non-zero).
std::map<std::string, double> summarize(const std::vector<RewardResult>& results, const std::vector<RewardSpec>& specs);

// FNV-1a 64-bit hash, as 16 lowercase hex digits in events.
uint64_t fnv1a64(std::string_view data);
std::string hex64(uint64_t v);

// SIGHUP sets a process-wide counter that makes every host's next check_for_updates() re-hash its
// files. Safe to call more than once.
void install_sighup_handler();
uint64_t sighup_count();

}  // namespace mathrl::reward_lua
