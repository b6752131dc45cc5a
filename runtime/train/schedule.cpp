#include "train/schedule.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "common/strings.h"

namespace mathrl::train {

ScheduleKind parse_schedule(const std::string& name) {
  if (name == "cosine") return ScheduleKind::Cosine;
  if (name == "constant") return ScheduleKind::Constant;
  if (name == "linear") return ScheduleKind::Linear;
  if (name == "multistep") return ScheduleKind::MultiStep;
  if (name == "function") return ScheduleKind::Function;
  throw UsageError(str("unknown schedule '", name, "'",
                       did_you_mean(name, {"cosine", "constant", "linear", "multistep", "function"}),
                       "; expected cosine, constant, linear, multistep or function"));
}

const char* schedule_name(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::Cosine: return "cosine";
    case ScheduleKind::Constant: return "constant";
    case ScheduleKind::Linear: return "linear";
    case ScheduleKind::MultiStep: return "multistep";
    case ScheduleKind::Function: return "function";
  }
  return "?";
}

LrSchedule::LrSchedule(ScheduleOptions options, std::function<double(int64_t)> fn)
    : options_(options), fn_(std::move(fn)) {
  if (options_.kind == ScheduleKind::Function && !fn_)
    throw UsageError("schedule 'function' needs a function of the step (lr = function(step) ... end)");
  if (options_.warmup_steps < 0) throw UsageError(str("warmup must be >= 0, got ", options_.warmup_steps));
  if (options_.min_lr_ratio < 0 || options_.min_lr_ratio > 1)
    throw UsageError(str("min_lr_ratio must be in [0, 1], got ", options_.min_lr_ratio));
  if (options_.total_steps < 1) options_.total_steps = 1;
}

double LrSchedule::at(int64_t step) const {
  const ScheduleOptions& o = options_;
  if (o.kind == ScheduleKind::Function) {
    double v = fn_(step);
    if (!std::isfinite(v) || v < 0) throw UsageError(str("the lr function returned ", v, " at step ", step));
    return v;
  }
  if (o.warmup_steps > 0 && step <= o.warmup_steps)
    return o.lr * static_cast<double>(std::max<int64_t>(step, 1)) / static_cast<double>(o.warmup_steps);
  if (o.kind == ScheduleKind::Constant) return o.lr;
  if (o.kind == ScheduleKind::MultiStep) {
    double ratio = 1.0;
    for (const auto& [fraction, r] : o.milestones)
      if (static_cast<double>(step) > fraction * static_cast<double>(o.total_steps)) ratio = r;
    return o.lr * ratio;
  }
  const int64_t span = o.total_steps - o.warmup_steps;
  double progress = span <= 0 ? 1.0 : static_cast<double>(step - o.warmup_steps) / static_cast<double>(span);
  progress = std::clamp(progress, 0.0, 1.0);
  const double floor = o.min_lr_ratio;
  if (o.kind == ScheduleKind::Linear) return o.lr * (1.0 - (1.0 - floor) * progress);
  return o.lr * (floor + (1.0 - floor) * 0.5 * (1.0 + std::cos(M_PI * progress)));
}

}  // namespace mathrl::train
