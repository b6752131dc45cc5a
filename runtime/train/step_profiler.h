// A Kineto profile of a window of training steps, on request, to find where a step's time goes:
//   MATHRL_PROFILE=DIR[:FIRST[:COUNT]]   (default FIRST 5, COUNT 3: after warm-up, a few steps)
// writes DIR/trace.json (chrome://tracing, Perfetto) and DIR/kernels.md: the device's kernels
// grouped by name with their share of the window's device time, the groups (matmul, attention,
// elementwise, ...) summed, and the device's busy fraction of the window's wall time.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

namespace mathrl::train {

class StepProfiler {
 public:
  // Null unless $MATHRL_PROFILE is set (a malformed value is an error, not ignored).
  static std::unique_ptr<StepProfiler> from_env();
  StepProfiler(std::string dir, int64_t first, int64_t count);
  ~StepProfiler();
  void before_step(int64_t step);  // starts the profiler at `first`
  void after_step(int64_t step);   // stops after step first + count - 1 and writes the files
  const std::string& dir() const { return dir_; }

 private:
  void finish();
  std::string dir_;
  int64_t first_, count_;
  bool active_ = false, done_ = false;
  int64_t wall_start_ns_ = 0;
};

// The group a device kernel's name belongs to (matmul, attention, optimizer, ...); public for tests.
std::string kernel_group(const std::string& name);

}  // namespace mathrl::train
