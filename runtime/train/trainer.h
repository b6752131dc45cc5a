// The training loop of the base and instruct stages: documents -> packed rows (fixed seq_len, EOS
// separators, optional per-document attention masking) -> micro-batches -> masked next-token loss
// (chunked through kernels/token_logprobs.h, so the batch's full fp32 logits never exist) ->
// gradient accumulation -> clip -> AdamW step -> schedule. Metrics per step to a MetricsWriter,
// evaluation and checkpoints every N steps, exact resume from a checkpoint.
//
// The loss of a step is sum(-log p) over every target token of all its micro-batches divided by the
// number of those tokens (all ranks together), so grad_accum = k equals one k-times-larger batch and
// a data-parallel run equals one process with the same global batch.
//
// The pieces (RowSource, make_batch, masked_lm_loss) are public for the RL stage and tests.
#pragma once
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "data/packer.h"
#include "data/stream.h"
#include "model/transformer.h"
#include "train/checkpoint.h"
#include "train/optimizer.h"
#include "train/schedule.h"

namespace mathrl {
class Logger;
class MetricsWriter;
}
namespace mathrl::dist {
class ProcessGroup;
class DataParallel;
class ShardedAdamW;
}

namespace mathrl::train {

// Packed rows from a document stream, resumable: the documents the Packer holds but has not yet
// emitted are part of the saved state, so a resumed run packs exactly the rows the original would
// have. (Data parallelism shards rows, not documents: every rank packs the same rows and trains on
// its share, so N ranks see exactly the global batch of one process, and one cursor fits all ranks.)
class RowSource {
 public:
  RowSource(data::DocumentStream& stream, int seq_len, int32_t eos_id, int32_t pad_id);
  // Next full row; at the end of the data, the padded remainder (once). False when nothing is left.
  bool next(data::PackedRow& row);
  // The stream's JSON plus the packer's pending documents and the document counter.
  std::string save_state() const;
  void load_state(const std::string& json);
  uint64_t documents() const { return documents_; }  // documents pulled from the stream
  std::vector<uint64_t> tokens_by_source() const { return source_tokens_; }

 private:
  bool pull_document();
  void consume(size_t n);
  data::DocumentStream& stream_;
  int seq_len_;
  int32_t eos_id_, pad_id_;
  std::unique_ptr<data::Packer> packer_;
  // Documents added to the packer whose tokens (EOS included) are not all emitted yet.
  struct Pending {
    std::vector<int32_t> tokens;
    std::vector<uint8_t> mask;
    size_t emitted = 0;  // of tokens.size() + 1 (the EOS)
  };
  std::deque<Pending> pending_;
  uint64_t documents_ = 0;
  std::vector<uint64_t> source_tokens_;
  bool exhausted_ = false, flushed_ = false;
};

// A micro-batch on the device. Row r's targets are tokens[r, 1:] at positions [r, :-1].
struct Batch {
  at::Tensor ids;           // [B, T] int64
  at::Tensor positions;     // [B, T] int64
  at::Tensor document_ids;  // [B, T] int64, undefined without doc masking
  at::Tensor target_index;  // [N] int64: flat indices b*T + t of positions that have a target
  at::Tensor targets;       // [N] int64: the token at b*T + t + 1
  int64_t target_tokens = 0;
  int64_t tokens = 0;       // non-padding tokens
};

// Targets are tokens with loss_mask 1 that follow a token of the same document (with doc masking
// the first token of a document is not predictable, without it a token after EOS is).
Batch make_batch(const std::vector<data::PackedRow>& rows, at::Device device, bool doc_masking);
int64_t count_targets(const data::PackedRow& row, bool doc_masking);

// sum over the batch's targets of -log p(target), divided by `normalizer` (a scalar float32 tensor
// with grad). Logits are never materialized beyond one chunk (kernels::token_logprobs).
at::Tensor masked_lm_loss(model::Decoder& model, const Batch& batch, double normalizer);

struct TrainerOptions {
  int seq_len = 2048;
  int64_t micro_batch = 1;       // rows per forward/backward
  int64_t grad_accum = 1;        // micro-batches per optimizer step
  int64_t steps = 1;             // optimizer steps of the whole run
  bool doc_masking = true;
  int64_t eval_every = 0;        // 0 = evaluate at the end only (when eval data is set)
  int64_t eval_rows = 64;        // held-out rows evaluated (taken once, the same every time)
  int64_t checkpoint_every = 0;  // 0 = at the end only
  bool checkpoint_at_end = true; // also after the last step (and when interrupted)
  int64_t log_every = 10;        // log line every N steps (metrics are written every step)
  at::Device device = at::kCPU;
  int32_t eos_id = 0, pad_id = 0;
  std::string recipe_text;       // stored in checkpoints
};

// What one optimizer step did (also the metrics line).
struct StepStats {
  int64_t step = 0;
  double loss = 0, lr = 0, grad_norm = 0;
  bool applied = true;
  int64_t target_tokens = 0, tokens = 0;
  double tokens_per_s = 0;
};

struct TrainSummary {
  int64_t steps = 0;          // optimizer steps completed (including resumed ones)
  double last_loss = 0;
  double eval_loss = 0;       // last evaluation (NaN when none)
  int64_t skipped = 0;
  std::string stop_reason;    // "steps", "data", "interrupted"
  std::string last_checkpoint;
};

class Trainer {
 public:
  using EvalHook = std::function<std::map<std::string, double>(int64_t step)>;

  Trainer(model::Decoder model, AdamW& optimizer, LrSchedule schedule, data::DocumentStream& train_data,
          TrainerOptions options);
  // ZeRO-1/2 (dist/zero.h): the optimizer state (and with stage 2 the gradients) sharded over the
  // ranks of the process group given to set_process_group, which must be the optimizer's. Float32
  // parameters: gradients are reduced in buckets during the last micro-batch's backward (to their
  // owners for stage 2), and the optimizer must have been built with reduce_grads = false;
  // low-precision ones: the optimizer reduces them in its step (reduce_grads = true) and grad_accum
  // must be 1 (their micro-batch gradients would sum in low precision). Checkpoints hold one
  // optimizer file in train::AdamW's format, so they resume at any world size, sharded or not.
  Trainer(model::Decoder model, dist::ShardedAdamW& optimizer, LrSchedule schedule, data::DocumentStream& train_data,
          TrainerOptions options);
  ~Trainer();

  void set_eval_data(data::DocumentStream* eval_data) { eval_data_ = eval_data; }
  // Called at each evaluation (after the eval loss) and at the end; its numbers join the metrics.
  void set_eval_hook(EvalHook hook) { eval_hook_ = std::move(hook); }
  void set_checkpoints(CheckpointManager* manager) { checkpoints_ = manager; }
  void set_logger(Logger* log) { log_ = log; }
  void set_metrics(MetricsWriter* metrics) { metrics_ = metrics; }
  // Data parallelism: each optimizer step takes micro_batch * grad_accum * world_size rows, rank r
  // trains on rows r, r + world_size, ...; gradients and the loss are summed across ranks (the loss
  // is normalized by the global target count), so the run equals one process with the global batch.
  // Float32 parameters: gradients are reduced in buckets during the last micro-batch's backward
  // (dist::DataParallel with overlap; the earlier micro-batches only accumulate). Low-precision
  // parameters (their micro-batch gradients are summed into float32 by AdamW::accumulate_grads):
  // one flat float32 reduction per step before the optimizer update.
  void set_process_group(dist::ProcessGroup* group);
  // Checked between steps: when set, the run checkpoints and stops ("interrupted").
  void set_stop_flag(const std::atomic<bool>* flag) { stop_ = flag; }

  // Restores model, optimizer, RNG, data cursor and step from a checkpoint directory.
  void resume(const std::string& checkpoint_dir);

  TrainSummary run();
  StepStats train_step();   // one optimizer step (exposed for tests)
  double evaluate();        // mean loss per target token over the held-out rows
  std::string checkpoint(); // writes one now; returns its path ("" without a manager)

  int64_t step() const { return step_; }
  model::Decoder& model() { return model_; }

 private:
  Trainer(model::Decoder model, AdamW* adam, dist::ShardedAdamW* sharded, LrSchedule schedule,
          data::DocumentStream& train_data, TrainerOptions options);
  std::vector<data::PackedRow> next_rows(int64_t n);
  void write_metrics(const StepStats& s, const std::map<std::string, double>& extra);
  int64_t skipped_steps() const;

  model::Decoder model_;
  AdamW* adam_;                   // exactly one of these two is set
  dist::ShardedAdamW* sharded_;
  LrSchedule schedule_;
  TrainerOptions options_;
  std::unique_ptr<RowSource> rows_;
  data::DocumentStream* eval_data_ = nullptr;
  std::vector<data::PackedRow> eval_cache_;
  bool eval_loaded_ = false;
  EvalHook eval_hook_;
  CheckpointManager* checkpoints_ = nullptr;
  Logger* log_ = nullptr;
  MetricsWriter* metrics_ = nullptr;
  dist::ProcessGroup* group_ = nullptr;
  std::unique_ptr<dist::DataParallel> dp_;
  bool overlap_ = false;
  const std::atomic<bool>* stop_ = nullptr;
  data::DocumentStream& train_data_;
  int64_t step_ = 0;
  uint64_t tokens_seen_ = 0;
  bool data_done_ = false;
  double last_eval_ = 0;
};

}  // namespace mathrl::train
