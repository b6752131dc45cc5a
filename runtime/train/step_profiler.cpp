#include "train/step_profiler.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <vector>

#include <torch/csrc/autograd/profiler_kineto.h>

#include "common/error.h"
#include "common/strings.h"

namespace mathrl::train {

namespace {

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

std::string kernel_group(const std::string& raw) {
  const std::string n = lower(raw);
  if (contains(n, "memcpy") || contains(n, "memset")) return "copy/memset";
  if (contains(n, "flash") || contains(n, "fmha") || contains(n, "attention") || contains(n, "cudnn")) return "attention";
  if (contains(n, "gemm") || contains(n, "cutlass") || contains(n, "xmma") || contains(n, "nvjet") ||
      contains(n, "cublas") || contains(n, "gemv"))
    return "matmul";
  if (contains(n, "adam") || contains(n, "multi_tensor")) return "optimizer";
  if (contains(n, "logprob") || contains(n, "softmax") || contains(n, "cross_entropy")) return "loss/softmax";
  if (contains(n, "nccl")) return "communication";
  if (contains(n, "reduce") || contains(n, "norm")) return "reduction";
  if (contains(n, "elementwise") || contains(n, "catarray") || contains(n, "index") || contains(n, "copy") ||
      contains(n, "fill"))
    return "elementwise";
  return "other";
}

std::unique_ptr<StepProfiler> StepProfiler::from_env() {
  const char* v = std::getenv("MATHRL_PROFILE");
  if (!v || !*v) return nullptr;
  std::vector<std::string> parts = split(v, ':');
  MATHRL_CHECK(!parts.empty() && !parts[0].empty() && parts.size() <= 3,
               "MATHRL_PROFILE must be DIR[:FIRST[:COUNT]], got '", v, "'");
  auto number = [&](size_t i, int64_t fallback) -> int64_t {
    if (parts.size() <= i) return fallback;
    char* end = nullptr;
    long long x = std::strtoll(parts[i].c_str(), &end, 10);
    MATHRL_CHECK(end && *end == '\0' && x > 0, "MATHRL_PROFILE: '", parts[i], "' is not a positive step count");
    return x;
  };
  return std::make_unique<StepProfiler>(parts[0], number(1, 5), number(2, 3));
}

StepProfiler::StepProfiler(std::string dir, int64_t first, int64_t count)
    : dir_(std::move(dir)), first_(first), count_(count) {}

StepProfiler::~StepProfiler() {
  if (!active_) return;
  try {  // a run that stops inside the window still leaves its profile
    finish();
  } catch (...) {
  }
}

void StepProfiler::before_step(int64_t step) {
  if (active_ || done_ || step < first_) return;
  using namespace torch::profiler::impl;
  const ProfilerConfig config(ProfilerState::KINETO);
  const std::set<ActivityType> activities{ActivityType::CPU, ActivityType::CUDA};
  torch::autograd::profiler::prepareProfiler(config, activities);  // initializes Kineto's trace first
  torch::autograd::profiler::enableProfiler(config, activities);
  active_ = true;
  wall_start_ns_ = now_ns();
}

void StepProfiler::after_step(int64_t step) {
  if (active_ && step >= first_ + count_ - 1) finish();
}

void StepProfiler::finish() {
  const int64_t wall_ns = now_ns() - wall_start_ns_;
  active_ = false;
  done_ = true;
  std::unique_ptr<torch::autograd::profiler::ProfilerResult> result = torch::autograd::profiler::disableProfiler();
  std::filesystem::create_directories(dir_);
  std::string trace_error;
  try {  // the table below does not need the trace: write it even when the trace cannot be saved
    result->save(dir_ + "/trace.json");
  } catch (const std::exception& e) {
    trace_error = e.what();
  }

  struct Entry {
    int64_t ns = 0, calls = 0;
  };
  std::map<std::string, Entry> by_name, by_group;
  int64_t device_ns = 0;
  for (const auto& e : result->events()) {
    if (e.deviceType() != c10::DeviceType::CUDA) continue;
    const auto ns = static_cast<int64_t>(e.durationNs());
    Entry& k = by_name[e.name()];
    k.ns += ns, k.calls += 1;
    Entry& g = by_group[kernel_group(e.name())];
    g.ns += ns, g.calls += 1;
    device_ns += ns;
  }
  auto sorted = [](const std::map<std::string, Entry>& m) {
    std::vector<std::pair<std::string, Entry>> v(m.begin(), m.end());
    std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.second.ns > b.second.ns; });
    return v;
  };
  auto pct = [&](int64_t ns) { return device_ns > 0 ? 100.0 * static_cast<double>(ns) / device_ns : 0.0; };
  std::ofstream md(dir_ + "/kernels.md");
  MATHRL_CHECK(md.good(), "cannot write ", dir_, "/kernels.md");
  char line[512];
  std::snprintf(line, sizeof line,
                "Profile of %lld steps from step %lld: wall %.1f ms, device kernels summed %.1f ms (%.0f%% of wall)\n\n",
                static_cast<long long>(count_), static_cast<long long>(first_), wall_ns / 1e6, device_ns / 1e6,
                wall_ns > 0 ? 100.0 * static_cast<double>(device_ns) / wall_ns : 0.0);
  md << line;
  if (!trace_error.empty()) md << "(trace.json not written: " << trace_error << ")\n\n";
  md << "| group | ms | share | kernels |\n|---|---|---|---|\n";
  for (const auto& [name, e] : sorted(by_group)) {
    std::snprintf(line, sizeof line, "| %s | %.2f | %.1f%% | %lld |\n", name.c_str(), e.ns / 1e6, pct(e.ns),
                  static_cast<long long>(e.calls));
    md << line;
  }
  md << "\n| kernel | group | ms | share | calls | mean us |\n|---|---|---|---|---|---|\n";
  int shown = 0;
  for (const auto& [name, e] : sorted(by_name)) {
    if (++shown > 60) break;
    std::string shortname = name;
    if (shortname.size() > 140) shortname.replace(140, std::string::npos, "...");
    for (char& c : shortname)
      if (c == '|') c = '/';
    std::snprintf(line, sizeof line, "| %s | %s | %.2f | %.1f%% | %lld | %.1f |\n", shortname.c_str(),
                  kernel_group(name).c_str(), e.ns / 1e6, pct(e.ns), static_cast<long long>(e.calls),
                  e.ns / 1e3 / std::max<int64_t>(e.calls, 1));
    md << line;
  }
}

}  // namespace mathrl::train
