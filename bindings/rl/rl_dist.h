// The rl stage's step figures combined across data-parallel ranks: each rank adds what it saw of
// its own slice of the batch, and reduce() gives every rank the figures of the global batch.
#pragma once
#include <map>
#include <string>
#include <vector>

#include <c10/core/Device.h>

namespace mathrl::dist {
class ProcessGroup;
}

namespace mathrl::lua {

class RankMetrics {
 public:
  void add_sum(const std::string& name, double value);
  // Reported as sum / count over all ranks (0 when the count is 0).
  void add_mean(const std::string& name, double sum, double count);
  // Population standard deviation from a sum, a sum of squares and a count.
  void add_std(const std::string& name, double sum, double sum_squares, double count);
  void add_min(const std::string& name, double value);
  void add_max(const std::string& name, double value);

  // Collective when `group` has more than one rank (every rank must call it at the same point).
  // Names may differ between ranks (a reward failure seen on one rank only): the union is
  // reported. A min or max that no rank gave is left out.
  std::map<std::string, double> reduce(dist::ProcessGroup* group, const c10::Device& device) const;

 private:
  struct Entry {
    double a = 0, b = 0, c = 0;
  };
  std::map<std::string, Entry> entries_;  // keyed by a kind letter + the name
};

// Elementwise sum over ranks (the values themselves without a group or with one rank).
std::vector<double> sum_across(dist::ProcessGroup* group, std::vector<double> values, const c10::Device& device);

}  // namespace mathrl::lua
