// Logging, run directories and progress display.
#pragma once
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>

#include "common/tfevents.h"

namespace mathrl {

// Lines go to stderr and, once a run directory exists, to its log file. Thread-safe.
class Logger {
 public:
  Logger() = default;
  ~Logger();
  void open_file(const std::string& path);
  void info(const std::string& msg) { write("info", msg); }
  void warn(const std::string& msg) { write("warn", msg); }
  void error(const std::string& msg) { write("error", msg); }
  void set_quiet(bool quiet) { quiet_ = quiet; }

 private:
  void write(const char* level, const std::string& msg);
  std::mutex mutex_;
  FILE* file_ = nullptr;
  bool quiet_ = false;
};

// One JSON object per line: {"step": 3, "loss": 2.1, ...}. Values are numbers; flushed each write
// so a killed run keeps its metrics. The same values also go to a TensorBoard event file beside it
// (metrics.jsonl -> events.out.tfevents.*; metrics.rankN.jsonl -> rankN/events.out.tfevents.*) unless
// `tensorboard` is false or $MATHRL_TFEVENTS=0.
class MetricsWriter {
 public:
  MetricsWriter() = default;
  ~MetricsWriter();
  void open(const std::string& path, bool append, bool tensorboard = true);
  void write(long long step, const std::map<std::string, double>& values);
  bool is_open() const { return file_ != nullptr; }
  const std::string& events_path() const { return events_.path(); }  // "" when not writing events

 private:
  std::mutex mutex_;
  FILE* file_ = nullptr;
  TfEventsWriter events_;
};

// A run's directory: runs/<name>-<YYYYmmdd-HHMMSS>/ by default, or the --out path.
// Holds recipe.resolved.lua, log.txt, metrics.jsonl and checkpoints/.
class RunDir {
 public:
  // `rank` > 0 (data-parallel workers) share rank 0's directory; their per-rank files get a suffix.
  // The time stamp comes from $MATHRL_RUN_STAMP when set (mathrl launch sets it so every rank agrees).
  static RunDir create(const std::string& runs_root, const std::string& name, const std::string& out, int rank = 0);
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  // "log.txt" -> "log.txt" on rank 0, "log.rank3.txt" on rank 3.
  std::string rank_file(const std::string& name) const;
  int rank() const { return rank_; }
  std::string checkpoints() const { return path_ + "/checkpoints"; }

 private:
  std::string path_;
  int rank_ = 0;
};

// Progress with rate and ETA: a redrawn bar when stderr is a terminal, plain lines otherwise
// (at most one line every `plain_interval_s` seconds).
class Progress {
 public:
  Progress(std::string label, long long total, std::string unit = "it", double plain_interval_s = 10.0);
  ~Progress();
  void update(long long done, const std::string& suffix = "");
  void finish(const std::string& suffix = "");

 private:
  std::string render(long long done, const std::string& suffix) const;
  std::string label_, unit_;
  long long total_;
  double plain_interval_s_;
  bool tty_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_, last_print_;
};

std::string format_duration(double seconds);  // "1h02m", "3m05s", "12.3s"

}  // namespace mathrl
