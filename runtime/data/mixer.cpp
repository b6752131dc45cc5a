#include "data/mixer.h"

#include <cmath>
#include <iomanip>
#include <limits>
#include <sstream>

#include "common/error.h"

namespace mathrl::data {

Mixer::Mixer(std::vector<std::string> names, std::vector<double> weights)
    : names_(std::move(names)), taken_(names_.size(), 0), exhausted_(names_.size(), false) {
  if (names_.empty()) throw UsageError("bad argument #1 to 'mix' (no data sources)");
  set_weights(weights);
}

void Mixer::set_weights(const std::vector<double>& weights) {
  if (weights.size() != names_.size())
    throw UsageError(str("bad argument #2 to 'mix' (", weights.size(), " weights for ", names_.size(), " sources)"));
  double sum = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    if (!std::isfinite(weights[i]) || weights[i] < 0)
      throw UsageError(str("bad argument #2 to 'mix' (weight of source '", names_[i], "' is ", weights[i],
                           "; weights must be finite and >= 0)"));
    sum += weights[i];
  }
  if (sum <= 0) throw UsageError("bad argument #2 to 'mix' (weights sum to 0)");
  weights_.clear();
  for (double w : weights) weights_.push_back(w / sum);
}

size_t Mixer::pick() const {
  uint64_t total = 0;
  for (uint64_t t : taken_) total += t;
  size_t best = names_.size();
  double best_deficit = -std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < names_.size(); ++i) {
    if (exhausted_[i] || weights_[i] == 0) continue;
    const double deficit = weights_[i] * static_cast<double>(total + 1) - static_cast<double>(taken_[i]);
    if (deficit > best_deficit) {
      best_deficit = deficit;
      best = i;
    }
  }
  if (best == names_.size()) throw Error("data mix: every source with a positive weight is exhausted");
  return best;
}

void Mixer::record(size_t i, uint64_t tokens) {
  MATHRL_CHECK(i < taken_.size(), "source index ", i);
  taken_[i] += tokens;
}

void Mixer::set_exhausted(size_t i) {
  MATHRL_CHECK(i < exhausted_.size(), "source index ", i);
  exhausted_[i] = true;
}

bool Mixer::available() const {
  for (size_t i = 0; i < names_.size(); ++i)
    if (!exhausted_[i] && weights_[i] > 0) return true;
  return false;
}

void Mixer::restore(const std::vector<double>& weights, const std::vector<uint64_t>& taken,
                    const std::vector<bool>& exhausted) {
  if (weights.size() != names_.size() || taken.size() != names_.size() || exhausted.size() != names_.size())
    throw UsageError(str("mixer state has ", weights.size(), " weights, ", taken.size(), " counters and ",
                         exhausted.size(), " flags for ", names_.size(), " sources"));
  set_weights(weights);  // validates
  weights_ = weights;
  taken_ = taken;
  exhausted_ = exhausted;
}

std::vector<double> Mixer::realized() const {
  uint64_t total = 0;
  for (uint64_t t : taken_) total += t;
  std::vector<double> out(taken_.size(), 0.0);
  if (total == 0) return out;
  for (size_t i = 0; i < taken_.size(); ++i) out[i] = static_cast<double>(taken_[i]) / static_cast<double>(total);
  return out;
}

std::string Mixer::report() const {
  std::ostringstream out;
  const auto r = realized();
  uint64_t total = 0;
  for (uint64_t t : taken_) total += t;
  for (size_t i = 0; i < names_.size(); ++i) out << names_[i] << '=' << std::fixed << std::setprecision(3) << r[i] << ' ';
  out << '(' << total << " tokens)";
  return out.str();
}

}  // namespace mathrl::data
