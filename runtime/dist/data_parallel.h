// Data parallelism: every rank runs the same model on its own slice of the global batch, and the
// gradients are reduced across ranks before the optimizer step.
//
// Overlap (the default): parameters are grouped into buckets of about `bucket_mb` megabytes, in
// reverse registration order (the order backward produces gradients, as PyTorch's DDP does). A
// post-accumulate-grad hook on every parameter copies its gradient into its bucket; when a bucket's
// last gradient arrives, the bucket's all-reduce starts asynchronously while backward continues.
// Buckets are launched strictly in index order so that every rank issues the same collectives in
// the same order. At most two buckets are in flight: an older one is waited for, written back into
// its parameters' .grad and freed from the hook, so the buckets never hold a second copy of all the
// gradients. finish() launches whatever is left (parameters that got no gradient contribute their
// current .grad or zeros), waits, and writes the rest back.
//
// Gradient accumulation: backward passes inside no_sync() (or with set_sync(false)) only accumulate
// into .grad locally; the hooks act on the backward with sync on (the last micro-step).
//
// Without overlap (hooks off), finish() flattens all gradients and reduces them in one call per
// dtype; sync_grads() does the same on explicit tensors (e.g. as train::AdamW's GradHook).
//
// Owner mode (ZeRO-2): given an owner rank per parameter, buckets never mix owners and each bucket
// is reduced to its owner only; after finish() a rank keeps .grad only for the parameters it owns
// (the others are reset to undefined, freeing the memory).
//
// World size 1: nothing is registered and every call is a no-op.
//
// The hooks are LibTorch's post-accumulate-grad hooks (torch::autograd::impl::set_post_acc_grad_hooks,
// one per tensor): a parameter belongs to at most one overlapping DataParallel at a time.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

namespace torch::nn {
class Module;
}

namespace mathrl::dist {

class ProcessGroup;

// The module's parameters that require grad, by (Hugging Face) name, in registration order: what
// DataParallel, ShardedAdamW and train::AdamW::for_module take.
std::vector<std::pair<std::string, at::Tensor>> trainable_parameters(torch::nn::Module& module);

// Mean: the reduced gradient is the average over ranks (each rank's loss is a mean over its own
// equally sized slice). Sum: the plain sum (each rank's loss is already divided by the global
// normalizer, as train::Trainer does with the global target count).
enum class Reduction { Mean, Sum };

struct DataParallelOptions {
  double bucket_mb = 25.0;  // bucket capacity; a parameter larger than this gets a bucket of its own
  bool overlap = true;      // autograd hooks + asynchronous per-bucket reductions
  Reduction reduction = Reduction::Mean;
  std::vector<int> owners;  // empty: all-reduce. Else owners[i] is the rank that keeps parameter i's grad
};

class DataParallel {
 public:
  DataParallel(ProcessGroup* group, std::vector<std::pair<std::string, at::Tensor>> named_params,
               DataParallelOptions options = {});
  ~DataParallel();  // removes the hooks
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  // false: backward only accumulates locally. Set it back to true before the last micro-step.
  void set_sync(bool on);
  bool sync() const;
  // RAII form: { auto guard = dp.no_sync(); loss.backward(); }
  class NoSync {
   public:
    explicit NoSync(DataParallel& dp) : dp_(&dp) { dp_->set_sync(false); }
    ~NoSync() {
      if (dp_) dp_->set_sync(true);
    }
    NoSync(NoSync&& o) noexcept : dp_(o.dp_) { o.dp_ = nullptr; }
    NoSync(const NoSync&) = delete;
    NoSync& operator=(const NoSync&) = delete;

   private:
    DataParallel* dp_;
  };
  NoSync no_sync() { return NoSync(*this); }

  // Completes the reduction of this step's gradients (see the header comment). Call it after the
  // last backward and before the optimizer step; calling it without any backward reduces the
  // current .grad values (zeros where undefined).
  void finish();

  // The synchronous path on explicit tensors, in place: one flat reduction per dtype.
  void sync_grads(std::vector<at::Tensor>& grads);
  // As a train::AdamW::GradHook: optimizer.set_grad_hook(dp.grad_hook()).
  std::function<void(std::vector<at::Tensor>&)> grad_hook();

  int64_t bucket_count() const;
  int64_t buckets_launched_in_backward() const;  // of the last step (tests: overlap really happened)
  bool active() const;  // world_size > 1

  struct State;

 private:
  std::unique_ptr<State> state_;
};

// Copies rank `root`'s parameter values to every rank (so all ranks start identical).
void broadcast_parameters(ProcessGroup& group, const std::vector<at::Tensor>& params, int root = 0);

// Collective check that the replicas agree: the largest difference across ranks of any
// parameter's fingerprint (its float64 sum and sum of squares). 0 when every rank holds the same values.
double replica_divergence(ProcessGroup& group, const std::vector<at::Tensor>& params);

// Deterministic data sharding: the global batch [0, n) is cut into n / group_size groups (GRPO's G
// completions of one prompt stay whole) and rank r takes the contiguous groups
// [floor(g r / W), floor(g (r + 1) / W)). Returns the item range [begin, end). n must be a multiple
// of group_size. Equal slices need g to be a multiple of W (check with equal_shards).
std::pair<int64_t, int64_t> shard_range(int64_t n, int rank, int world_size, int64_t group_size = 1);
bool equal_shards(int64_t n, int world_size, int64_t group_size = 1);
// The same on an explicit list of global indices (keeps their order).
std::vector<int64_t> shard_indices(const std::vector<int64_t>& global, int rank, int world_size, int64_t group_size = 1);

}  // namespace mathrl::dist
