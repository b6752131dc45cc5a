#include "rl/rl_dist.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>

#include <ATen/ATen.h>

#include "dist/process_group.h"

namespace mathrl::lua {

namespace {

bool distributed(dist::ProcessGroup* group) { return group && group->world_size() > 1; }

// Every rank's entry keys, merged (sorted), so that all ranks lay out their values the same way.
std::vector<std::string> union_keys(dist::ProcessGroup& group, const std::vector<std::string>& local) {
  std::string joined;
  for (const auto& k : local) joined += k + '\n';
  at::Tensor length = at::full({1}, static_cast<int64_t>(joined.size()), at::kLong);
  int64_t longest = 0;
  for (const auto& l : group.all_gather(length)) longest = std::max(longest, l.item<int64_t>());
  at::Tensor bytes = at::zeros({std::max<int64_t>(longest, 1)}, at::kByte);
  std::memcpy(bytes.data_ptr<uint8_t>(), joined.data(), joined.size());
  std::set<std::string> keys(local.begin(), local.end());
  for (const auto& b : group.all_gather(bytes)) {
    const char* p = reinterpret_cast<const char*>(b.data_ptr<uint8_t>());
    std::string text(p, strnlen(p, static_cast<size_t>(b.numel())));
    for (size_t start = 0, end; (end = text.find('\n', start)) != std::string::npos; start = end + 1)
      keys.insert(text.substr(start, end - start));
  }
  return {keys.begin(), keys.end()};
}

}  // namespace

void RankMetrics::add_sum(const std::string& name, double value) { entries_["s" + name].a += value; }

void RankMetrics::add_mean(const std::string& name, double sum, double count) {
  Entry& e = entries_["m" + name];
  e.a += sum, e.b += count;
}

void RankMetrics::add_std(const std::string& name, double sum, double sum_squares, double count) {
  Entry& e = entries_["d" + name];
  e.a += sum, e.b += sum_squares, e.c += count;
}

void RankMetrics::add_min(const std::string& name, double value) {
  auto [it, fresh] = entries_.try_emplace("<" + name, Entry{value});
  if (!fresh) it->second.a = std::min(it->second.a, value);
}

void RankMetrics::add_max(const std::string& name, double value) {
  auto [it, fresh] = entries_.try_emplace(">" + name, Entry{value});
  if (!fresh) it->second.a = std::max(it->second.a, value);
}

std::map<std::string, double> RankMetrics::reduce(dist::ProcessGroup* group, const c10::Device& device) const {
  std::vector<std::string> keys;
  for (const auto& [k, _] : entries_) keys.push_back(k);
  if (distributed(group)) keys = union_keys(*group, keys);
  const double none = -std::numeric_limits<double>::infinity();
  // Sums (three slots per key) in one all-reduce; minima (negated) and maxima in another.
  std::vector<double> sums(3 * keys.size(), 0.0), maxima(keys.size(), none);
  for (size_t i = 0; i < keys.size(); ++i) {
    auto it = entries_.find(keys[i]);
    if (it == entries_.end()) continue;
    const Entry& e = it->second;
    sums[3 * i] = e.a, sums[3 * i + 1] = e.b, sums[3 * i + 2] = e.c;
    if (keys[i][0] == '<') maxima[i] = -e.a;
    if (keys[i][0] == '>') maxima[i] = e.a;
  }
  if (distributed(group) && !keys.empty()) {
    sums = sum_across(group, sums, device);
    at::Tensor t = at::tensor(maxima, at::kDouble).to(device);
    group->all_reduce_max(t);
    t = t.cpu().contiguous();
    maxima.assign(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
  }
  std::map<std::string, double> out;
  for (size_t i = 0; i < keys.size(); ++i) {
    const std::string name = keys[i].substr(1);
    const double a = sums[3 * i], b = sums[3 * i + 1], c = sums[3 * i + 2];
    switch (keys[i][0]) {
      case 's': out[name] = a; break;
      case 'm': out[name] = b > 0 ? a / b : 0.0; break;
      case 'd': {
        const double mean = c > 0 ? a / c : 0.0;
        out[name] = c > 0 ? std::sqrt(std::max(0.0, b / c - mean * mean)) : 0.0;
        break;
      }
      case '<':
        if (maxima[i] != none) out[name] = -maxima[i];
        break;
      case '>':
        if (maxima[i] != none) out[name] = maxima[i];
        break;
      default: break;
    }
  }
  return out;
}

std::vector<double> sum_across(dist::ProcessGroup* group, std::vector<double> values, const c10::Device& device) {
  if (!distributed(group) || values.empty()) return values;
  at::Tensor t = at::tensor(values, at::kDouble).to(device);
  group->all_reduce_sum(t);
  t = t.cpu().contiguous();
  values.assign(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
  return values;
}

}  // namespace mathrl::lua
