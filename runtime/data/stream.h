// The interface between data sources and the trainers: a deterministic, resumable stream of tokenized
// documents drawn from a token-weighted mix of sources (JSONL, plain text, pre-tokenized shards).
// Trainers pull documents with next(), feed them to a Packer, and store save_state() in checkpoints.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace mathrl::data {

struct Document {
  std::vector<int32_t> tokens;
  std::vector<uint8_t> loss_mask;  // same length as tokens, or empty = every token is a target
  size_t source = 0;               // index of the source it came from
};

// A deterministic, resumable stream of tokenized documents from a weighted mix of sources.
class DocumentStream {
 public:
  virtual ~DocumentStream() = default;
  // Fills `out` with the next document; false once every source is exhausted.
  virtual bool next(Document& out) = 0;
  // Re-evaluates weights that are functions of the step (curricula); call before next() at each step.
  virtual void set_step(int64_t step) = 0;
  // JSON: source cursors, epochs, mixer counters, shuffle RNG. Loading it into a stream built from the
  // same sources makes that stream yield exactly the documents the saved one would have yielded.
  virtual std::string save_state() const = 0;
  // Throws DataError on a state that does not fit these sources (names, counts, sizes).
  virtual void load_state(const std::string& json) = 0;
  virtual std::vector<std::string> source_names() const = 0;
  // Token fractions per source so far.
  virtual std::vector<double> realized_mix() const = 0;
  // One line: realized mix, tokens, skipped lines per source.
  virtual std::string report() const = 0;
};

}  // namespace mathrl::data
