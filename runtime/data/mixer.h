// Token-weighted mixing of several document streams. The next document comes from the source whose
// realized token share lags its target weight the most (deficit scheduling): deterministic, and the
// realized mix converges to the weights without sampling noise.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace mathrl::data {

class Mixer {
 public:
  // names/weights must have equal length; weights >= 0 with a positive sum, else UsageError.
  Mixer(std::vector<std::string> names, std::vector<double> weights);
  // Replaces the weights (e.g. a curriculum evaluated at the current step); same validation.
  void set_weights(const std::vector<double>& weights);
  // Index of the source the next document should come from.
  size_t pick() const;
  // Records that `tokens` tokens were taken from source i.
  void record(size_t i, uint64_t tokens);
  // Realized fraction of tokens per source.
  std::vector<double> realized() const;
  std::string report() const;  // "gsm8k=0.700 math=0.300 (1000000 tokens)"
  void set_exhausted(size_t i);  // a source that ran out (epochs/cap reached) is never picked again
  // True while some source with a positive weight is not exhausted (pick() would succeed).
  bool available() const;

  // State, for exact resume: the normalized weights, tokens taken and exhausted flags.
  const std::vector<std::string>& names() const { return names_; }
  const std::vector<double>& weights() const { return weights_; }
  const std::vector<uint64_t>& taken() const { return taken_; }
  const std::vector<bool>& exhausted() const { return exhausted_; }
  // Restores a saved state bit for bit (weights as saved, not re-normalized). Sizes must match the
  // sources, else UsageError.
  void restore(const std::vector<double>& weights, const std::vector<uint64_t>& taken,
               const std::vector<bool>& exhausted);

 private:
  std::vector<std::string> names_;
  std::vector<double> weights_;
  std::vector<uint64_t> taken_;
  std::vector<bool> exhausted_;
};

}  // namespace mathrl::data
