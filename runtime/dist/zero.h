// ZeRO stages 1 and 2 over train::AdamW.
//
// The parameters are partitioned across ranks (contiguous in registration order, balanced by
// numel, the same on every rank). Each rank runs a train::AdamW over the parameters it owns only,
// so fp32 masters and both moments take 1/W of the memory; after the step every owner broadcasts
// its updated parameters.
//   stage 1: every rank holds full (all-reduced) gradients; only the optimizer state is sharded.
//   stage 2: gradients are reduced to their owner only; other ranks drop them.
// Gradient reduction either happens here in step() (reduce_grads = true, one flat collective per
// owner and dtype; simple, but the flat buffer is a transient full copy of the gradients) or before,
// by a DataParallel with overlap (the memory-lean path): for stage 2 give it
// `DataParallelOptions::owners = sharded.owners()` so its buckets are reduced to their owners and
// the other gradients are dropped as soon as their bucket is sent.
//
// Clipping and the non-finite guard are global: the norm is the square root of the all-reduced
// sum of each rank's squared partial norm, the clip is applied here (the inner AdamW gets clip 0),
// and when the norm or any rank's loss is not finite every rank skips the step together (the inner
// AdamW is stepped with a NaN loss, so its guard counts the skip and stops the run after
// nan_guard_limit in a row on every rank alike).
//
// save()/load() use one optimizer file for all ranks (rank 0 merges the shards), in
// train::AdamW's format: it loads at any world size, and into an unsharded AdamW.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "dist/data_parallel.h"
#include "train/checkpoint.h"
#include "train/optimizer.h"

namespace mathrl::dist {

class ProcessGroup;

struct Partition {
  std::vector<int> owner;      // per parameter, in registration order
  std::vector<int64_t> numel;  // per rank
  // Parameter i goes to the rank whose share of the total contains the midpoint of i's elements.
  static Partition balanced(const std::vector<int64_t>& numels, int world_size);
  std::vector<size_t> owned(int rank) const;
};

struct ZeroOptions {
  int stage = 1;             // 1 or 2
  bool reduce_grads = true;  // false: .grad values arrive already reduced (a DataParallel did it)
  Reduction reduction = Reduction::Mean;
};

// The optimizer step of a rank that holds only part of the gradients (ZeRO, FSDP shards): the
// global norm (square root of the all-reduced sum of each rank's squared partial norm), the clip
// with it, and the cross-rank non-finite guard (when the norm or any rank's loss is not finite every
// rank skips: `local` is stepped with a NaN loss so its guard counts the skip), then local.step.
// `grads` are `local`'s parameters' gradients (float32 preferred); `local` must have clip 0.
// Collective. grad_norm in the result is the global norm before clipping, equal on every rank.
train::StepResult step_with_global_norm(ProcessGroup& group, train::AdamW& local, std::vector<at::Tensor> grads,
                                        double clip, double lr, double loss);

class ShardedAdamW {
 public:
  ShardedAdamW(ProcessGroup* group, std::vector<std::pair<std::string, at::Tensor>> named_params,
               train::AdamWOptions adam, ZeroOptions zero = {});
  ~ShardedAdamW();

  // Collective: every rank calls it with this step's lr and its own loss. grad_norm in the result is
  // the global norm before clipping, equal on every rank.
  train::StepResult step(double lr, double loss);
  void zero_grad();  // every parameter's gradient, owned or not

  int stage() const { return zero_.stage; }
  const Partition& partition() const { return partition_; }
  const std::vector<int>& owners() const { return partition_.owner; }
  train::AdamW& local() { return *local_; }  // this rank's shard
  int64_t steps() const { return local_->steps(); }
  int64_t skipped() const { return local_->skipped(); }

  // Collective. One file for the whole optimizer (see the header comment).
  void save(const std::string& path);
  void load(const std::string& path);
  // For a train::CheckpointManager::save of step `step` into `checkpoints_dir`: collective, merges
  // the shards into a file there now and returns the writer (for rank 0's save) that moves it into
  // the checkpoint directory as its optimizer file, before the manifest.
  train::ExtraWriter save_for_checkpoint(const std::string& checkpoints_dir, int64_t step);
  // The checkpoint's optimizer file, written at any world size, when it has one.
  void load_from_checkpoint(const std::string& checkpoint_dir);

 private:
  void broadcast_from_owners();
  ProcessGroup* group_;
  ZeroOptions zero_;
  double clip_;
  std::vector<std::string> names_;
  std::vector<at::Tensor> params_;
  Partition partition_;
  std::vector<size_t> mine_;
  std::unique_ptr<train::AdamW> local_;
  std::unique_ptr<DataParallel> reducer_;  // reduce_grads = true: the flat, synchronous reduction
};

}  // namespace mathrl::dist
