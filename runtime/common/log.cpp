#include "common/log.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <unistd.h>

#include "common/error.h"
#include "common/jsonl.h"
#include "common/strings.h"

namespace mathrl {

namespace {
std::string timestamp(const char* fmt) {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, fmt, &tm);
  return buf;
}
}  // namespace

Logger::~Logger() {
  if (file_) std::fclose(file_);
}

void Logger::open_file(const std::string& path) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (file_) std::fclose(file_);
  file_ = std::fopen(path.c_str(), "a");
  if (!file_) throw Error(str(path, ": cannot open log: ", std::strerror(errno)));
}

void Logger::write(const char* level, const std::string& msg) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string line = str(timestamp("%H:%M:%S"), " ", level, " ", msg, "\n");
  if (!quiet_ || std::strcmp(level, "info") != 0) std::fputs(line.c_str(), stderr);
  if (file_) {
    std::fputs(line.c_str(), file_);
    std::fflush(file_);
  }
}

MetricsWriter::~MetricsWriter() {
  if (file_) std::fclose(file_);
}

void MetricsWriter::open(const std::string& path, bool append, bool tensorboard) {
  std::lock_guard<std::mutex> lock(mutex_);
  file_ = std::fopen(path.c_str(), append ? "a" : "w");
  if (!file_) throw Error(str(path, ": cannot open metrics file: ", std::strerror(errno)));
  if (tensorboard && tfevents_enabled()) {
    // Per-rank metrics get their own event directory, so TensorBoard shows each rank as a run.
    std::filesystem::path p(path);
    std::string stem = p.stem().string();
    std::string dir = p.parent_path().empty() ? "." : p.parent_path().string();
    if (stem != "metrics") dir += "/" + (starts_with(stem, "metrics.") ? stem.substr(8) : stem);
    events_.open(dir);
  }
}

void MetricsWriter::write(long long step, const std::map<std::string, double>& values) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!file_) return;
  std::string line = str("{\"step\":", step);
  for (const auto& [k, v] : values) {
    line += ",";
    append_json_string(line, k);
    char num[40];
    if (std::isfinite(v)) std::snprintf(num, sizeof num, ":%.9g", v);
    else std::snprintf(num, sizeof num, ":null");  // JSON has no NaN/inf
    line += num;
  }
  line += "}\n";
  std::fputs(line.c_str(), file_);
  std::fflush(file_);
  events_.write_scalars(step, values);
}

RunDir RunDir::create(const std::string& runs_root, const std::string& name, const std::string& out, int rank) {
  RunDir r;
  r.rank_ = rank;
  const char* stamp = std::getenv("MATHRL_RUN_STAMP");
  r.path_ = out.empty() ? str(runs_root, "/", name, "-", stamp && *stamp ? stamp : timestamp("%Y%m%d-%H%M%S")) : out;
  std::error_code ec;
  std::filesystem::create_directories(r.path_ + "/checkpoints", ec);
  if (ec) throw Error(str(r.path_, ": cannot create run directory: ", ec.message()));
  return r;
}

std::string RunDir::rank_file(const std::string& name) const {
  if (rank_ == 0) return file(name);
  auto dot = name.rfind('.');
  std::string suffix = str(".rank", rank_);
  return file(dot == std::string::npos ? name + suffix : name.substr(0, dot) + suffix + name.substr(dot));
}

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  char buf[32];
  if (s < 60) std::snprintf(buf, sizeof buf, "%.1fs", s);
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%dm%02ds", int(s) / 60, int(s) % 60);
  else std::snprintf(buf, sizeof buf, "%dh%02dm", int(s) / 3600, (int(s) % 3600) / 60);
  return buf;
}

Progress::Progress(std::string label, long long total, std::string unit, double plain_interval_s)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), plain_interval_s_(plain_interval_s),
      tty_(::isatty(STDERR_FILENO) == 1), start_(std::chrono::steady_clock::now()), last_print_(start_) {}

Progress::~Progress() {
  if (tty_ && !finished_) std::fputc('\n', stderr);
}

std::string Progress::render(long long done, const std::string& suffix) const {
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double rate = elapsed > 0 ? done / elapsed : 0;
  double eta = rate > 0 && total_ > 0 ? (total_ - done) / rate : NAN;
  std::string bar;
  if (tty_ && total_ > 0) {
    int width = 24, filled = static_cast<int>(width * std::min(1.0, double(done) / total_));
    bar = "[" + std::string(filled, '#') + std::string(width - filled, '.') + "] ";
  }
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s %s%lld/%lld %.2f %s/s elapsed %s eta %s", label_.c_str(), bar.c_str(), done,
                total_, rate, unit_.c_str(), format_duration(elapsed).c_str(), format_duration(eta).c_str());
  return suffix.empty() ? std::string(buf) : std::string(buf) + " " + suffix;
}

void Progress::update(long long done, const std::string& suffix) {
  auto now = std::chrono::steady_clock::now();
  if (tty_) {
    std::fprintf(stderr, "\r\033[K%s", render(done, suffix).c_str());
    std::fflush(stderr);
  } else if (std::chrono::duration<double>(now - last_print_).count() >= plain_interval_s_) {
    std::fprintf(stderr, "%s\n", render(done, suffix).c_str());
    last_print_ = now;
  }
}

void Progress::finish(const std::string& suffix) {
  if (finished_) return;
  finished_ = true;
  std::fprintf(stderr, "%s%s\n", tty_ ? "\r\033[K" : "", render(total_, suffix).c_str());
}

}  // namespace mathrl
