// Training checkpoints under <run>/checkpoints/step-N/:
//   config.json, model.safetensors   the model in Hugging Face layout (transformers loads the dir)
//   optimizer.safetensors            AdamW state (masters, moments, counters), when given
//   rng.safetensors                  torch's CPU generator state and each CUDA device's
//   state.json                       step, data cursor (the stream's JSON), registered counters,
//                                    metrics, stage extras
//   recipe.lua                       the resolved recipe text
//   manifest.json                    written last: every file with its size
// A checkpoint is written into step-N.tmp-<pid>, every file fsync'ed, the manifest written and
// fsync'ed, then the directory renamed to step-N (and the parent fsync'ed). A directory whose name
// is not step-N, or whose manifest is missing, unparsable or disagrees with the files, is never
// taken as valid, so a process killed mid-write leaves the previous checkpoint in charge.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "model/transformer.h"

namespace mathrl::train {

class AdamW;

// Everything besides model and optimizer that a resume needs.
struct TrainState {
  int64_t step = 0;                           // optimizer steps completed
  std::string data_state;                     // JSON text (DocumentStream::save_state + packer leftovers)
  std::string recipe_text;                    // resolved recipe
  std::map<std::string, uint64_t> counters;   // seeds, sample counters, tokens seen, ...
  std::map<std::string, double> metrics;      // e.g. {"eval_loss": 2.3}; "best" uses one of these
  std::string extra_json = "{}";              // free-form JSON object for a stage's own state
};

struct CheckpointInfo {
  std::string path;  // .../checkpoints/step-N
  int64_t step = 0;
  std::map<std::string, double> metrics;
};

struct CheckpointOptions {
  int keep_last = 3;           // newest checkpoints kept (>= 1)
  std::string best_metric;     // "" = no best; else the metric (lower is better) whose best is kept too
  at::ScalarType model_dtype = at::kFloat;  // dtype of model.safetensors
  bool save_rng = true;
};

// The optimizer state's file in a checkpoint directory (train::AdamW's format).
inline constexpr const char* kOptimizerFile = "optimizer.safetensors";

// Extra files a stage writes into the (temporary) checkpoint directory before the manifest.
using ExtraWriter = std::function<void(const std::string& dir)>;

class CheckpointManager {
 public:
  // `dir` is the checkpoints folder (<run>/checkpoints); created when missing.
  CheckpointManager(std::string dir, CheckpointOptions options);

  // Writes step-<state.step> atomically, then prunes to keep_last plus the best. Returns its path.
  // `optimizer` may be null (no optimizer state). An existing step-N is replaced.
  std::string save(model::Decoder& model, const AdamW* optimizer, const TrainState& state,
                   const ExtraWriter& extra = {});

  std::vector<CheckpointInfo> valid() const;            // ascending by step
  std::optional<CheckpointInfo> latest_valid() const;
  std::optional<CheckpointInfo> best() const;           // by best_metric, when set
  const std::string& dir() const { return dir_; }

  // Manifest present and matching the files, directory named step-N.
  static bool is_valid(const std::string& checkpoint_dir);
  // `path`: a step-N dir, a checkpoints dir, or a run dir (uses its checkpoints/). Returns the
  // checkpoint to resume from (the latest valid one); throws UsageError when there is none.
  static std::string resolve(const std::string& path);
  // Loads weights into `model`, optimizer state into `optimizer` (when both are non-null and the
  // file exists), restores RNG states when `restore_rng`, and returns the TrainState.
  // Throws DataError for an invalid checkpoint.
  static TrainState load(const std::string& checkpoint_dir, model::Decoder* model, AdamW* optimizer,
                         bool restore_rng = true);

 private:
  void prune() const;
  std::string dir_;
  CheckpointOptions options_;
};

// RNG state of torch's default CPU generator and each CUDA device's (when CUDA is present).
void save_rng_state(const std::string& path);
void load_rng_state(const std::string& path);

}  // namespace mathrl::train
