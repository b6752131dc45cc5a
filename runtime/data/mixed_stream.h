// MixedStream: the DocumentStream over several Sources, mixed by tokens with data::Mixer.
// Each source walks its records epoch by epoch in an order shuffled by (seed, source name, epoch),
// so the order is a pure function of the cursor and resuming needs no RNG bytes: the state holds
// per-source cursors (epoch, position, tokens, skips) and the mixer's counters.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "data/mixer.h"
#include "data/source.h"
#include "data/stream.h"

namespace mathrl::data {

struct SourceConfig {
  std::string name;
  std::unique_ptr<Source> source;
  double weight = 1.0;                        // by tokens, >= 0 (normalized over the sources)
  std::function<double(int64_t)> weight_fn;   // when set, the weight at a step (curricula); overrides `weight`
  double epochs = 0;         // passes over the records (fractions allowed); 0 = 1, or unlimited with max_tokens
  uint64_t max_tokens = 0;   // stop after this many tokens (the last document is cut); 0 = no cap
  bool shuffle = true;       // shuffle the record order of every epoch
  std::optional<uint64_t> seed;  // overrides the stream's seed for this source
};

struct StreamOptions {
  uint64_t seed = 0;
  bool strict = false;         // a malformed record is a DataError naming file:line instead of a skip
  size_t log_first = 5;        // skipped records logged per source (all are counted)
  size_t give_up_after = 100;  // a source whose first N records are all malformed is a DataError
  std::function<void(const std::string&)> warn;  // where skip messages go (default: stderr)
};

class MixedStream : public DocumentStream {
 public:
  // UsageError for no sources, duplicate names, negative/NaN/all-zero weights, bad epochs.
  MixedStream(std::vector<SourceConfig> sources, StreamOptions options);

  bool next(Document& out) override;
  void set_step(int64_t step) override;
  std::string save_state() const override;
  void load_state(const std::string& json) override;
  std::vector<std::string> source_names() const override;
  std::vector<double> realized_mix() const override;
  std::string report() const override;

  size_t size() const { return cursors_.size(); }
  uint64_t tokens(size_t i) const { return cursors_.at(i).tokens; }
  uint64_t documents(size_t i) const { return cursors_.at(i).docs; }
  uint64_t skipped(size_t i) const { return cursors_.at(i).skipped.size(); }  // distinct malformed records
  uint64_t epoch(size_t i) const { return cursors_.at(i).epoch; }           // 0-based, of the next record
  const std::vector<double>& weights() const { return mixer_.weights(); }   // normalized, at the last step

 private:
  struct Cursor {
    SourceConfig cfg;
    uint64_t seed = 0;
    uint64_t budget = 0;  // records to visit in all (0 = unlimited)
    uint64_t epoch = 0, pos = 0, visited = 0;
    uint64_t tokens = 0, docs = 0, docs_this_epoch = 0, skip_events = 0;
    bool exhausted = false;
    std::set<uint64_t> skipped;
    std::vector<std::string> first_skips;  // "file:line" of the first log_first
    std::string first_reason;              // why the first skipped record was skipped
    std::vector<uint64_t> order;           // record order of the current epoch (empty = file order)
  };
  bool next_from(Cursor& c, size_t index, Document& out);
  void skip(Cursor& c, uint64_t record, const std::string& reason);
  void build_order(Cursor& c) const;
  std::vector<double> current_weights(int64_t step) const;
  void warn(const std::string& msg) const;

  StreamOptions options_;
  Mixer mixer_;  // declared before cursors_: built from the configs before they move into the cursors
  std::vector<Cursor> cursors_;
  int64_t step_ = 0;
};

}  // namespace mathrl::data
