// Learning-rate schedules: linear warmup then cosine (to min_lr_ratio * lr), constant, linear
// decay, or multi-step (DeepSeekMath's: the peak until 80% of training, 31.6% of it until 90%, then
// 10%; the milestones are options); or a function of the step (a Lua function, evaluated by the stage through
// Recipe::number_at). Steps are 1-based: at(1) is the rate of the first optimizer step.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace mathrl::train {

enum class ScheduleKind { Cosine, Constant, Linear, MultiStep, Function };
ScheduleKind parse_schedule(const std::string& name);  // "cosine" | "constant" | "linear" | "multistep" | "function"
const char* schedule_name(ScheduleKind kind);

struct ScheduleOptions {
  ScheduleKind kind = ScheduleKind::Cosine;
  double lr = 1e-4;            // peak rate
  int64_t warmup_steps = 0;    // linear from lr/warmup at step 1 to lr at step warmup
  int64_t total_steps = 1;     // decay reaches min_lr_ratio * lr at this step
  double min_lr_ratio = 0.1;
  // MultiStep: from fraction f of total_steps on, the rate is ratio * lr (sorted by f).
  std::vector<std::pair<double, double>> milestones = {{0.8, 0.316}, {0.9, 0.1}};
};

class LrSchedule {
 public:
  // `fn` is required for ScheduleKind::Function (its value is the rate; warmup is not applied).
  explicit LrSchedule(ScheduleOptions options, std::function<double(int64_t)> fn = {});
  double at(int64_t step) const;
  const ScheduleOptions& options() const { return options_; }

 private:
  ScheduleOptions options_;
  std::function<double(int64_t)> fn_;
};

}  // namespace mathrl::train
