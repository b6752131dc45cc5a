#include "dist/data_parallel.h"

#include <map>
#include <mutex>
#include <tuple>

#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/torch.h>

#include "common/error.h"
#include "dist/process_group.h"

namespace mathrl::dist {

namespace {

struct ParamSlot {
  std::string name;
  at::Tensor tensor;
  int owner = -1;  // -1: all-reduced
  size_t bucket = 0;
  int64_t offset = 0;
  bool ready = false;
};

struct Bucket {
  std::vector<size_t> params;
  at::Tensor flat;  // allocated when the first gradient arrives; freed by complete()
  int64_t numel = 0;
  at::TensorOptions options;
  int64_t pending = 0;
  int owner = -1;
  bool launched = false;
  Work work;
};

}  // namespace

struct DataParallel::State {
  ProcessGroup* group = nullptr;
  DataParallelOptions options;
  std::vector<ParamSlot> params;
  std::vector<Bucket> buckets;
  bool sync = true;
  bool hooked = false;
  size_t next_launch = 0, released = 0;
  int64_t launched_in_backward = 0, last_launched_in_backward = 0;
  std::mutex mu;

  bool active() const { return group && group->world_size() > 1; }

  void launch(Bucket& b) {
    if (options.reduction == Reduction::Mean) b.flat.div_(static_cast<double>(group->world_size()));
    b.work = b.owner < 0 ? group->all_reduce_sum_async(b.flat) : group->reduce_sum_async(b.flat, b.owner);
    b.launched = true;
  }

  // Buckets go out in index order only, so every rank issues the same sequence of collectives.
  void launch_ready(bool in_backward) {
    while (next_launch < buckets.size() && buckets[next_launch].pending == 0) {
      launch(buckets[next_launch++]);
      if (in_backward) ++launched_in_backward;
      release_sent();
    }
  }

  // Waits for a bucket's reduction, writes the result into the .grad of the parameters this rank
  // keeps, and frees the bucket.
  void complete(Bucket& b) {
    if (!b.flat.defined()) return;
    b.work.wait();
    if (b.owner < 0 || b.owner == group->rank())
      for (size_t j : b.params) {
        ParamSlot& p = params[j];
        at::Tensor view = slot_view(p);
        if (p.tensor.grad().defined()) p.tensor.mutable_grad().copy_(view);
        else p.tensor.mutable_grad() = view.clone();
      }
    b.flat = at::Tensor();
  }

  // Keeps at most two buckets in flight during backward: older ones are completed from the hook, so
  // the buckets never add up to a second copy of the gradients. (A ready parameter's .grad is final
  // for this backward: autograd accumulates a leaf once per pass.)
  void release_sent() {
    for (; released + 2 < next_launch; ++released) complete(buckets[released]);
  }

  at::Tensor slot_view(const ParamSlot& p) {
    return buckets[p.bucket].flat.narrow(0, p.offset, p.tensor.numel()).view(p.tensor.sizes());
  }

  void mark_ready(size_t index, const at::Tensor& grad, bool in_backward) {
    ParamSlot& p = params[index];
    if (p.ready)
      throw Error(str("data parallel: the gradient of ", p.name, " arrived twice before finish(); run the earlier "
                      "micro-steps of a gradient accumulation inside no_sync()"));
    p.ready = true;
    Bucket& b = buckets[p.bucket];
    if (!b.flat.defined()) b.flat = at::empty({b.numel}, b.options);
    at::Tensor view = slot_view(p);
    if (grad.defined()) view.copy_(grad);
    else view.zero_();
    // Owner mode: a gradient this rank does not keep lives on only in the bucket.
    if (p.owner >= 0 && p.owner != group->rank()) p.tensor.mutable_grad() = at::Tensor();
    if (--b.pending == 0) launch_ready(in_backward);
  }

  void on_grad(size_t index, const at::Tensor& param) {
    std::lock_guard<std::mutex> lock(mu);
    if (!sync) return;
    at::NoGradGuard no_grad;
    mark_ready(index, param.grad(), true);
  }

  // One flat reduction per (owner, dtype, device) group, in place on `grads`.
  void reduce_flat(std::vector<at::Tensor>& grads, const std::vector<int>& owners) {
    at::NoGradGuard no_grad;
    std::map<std::tuple<int, int, std::string>, std::vector<size_t>> groups;
    for (size_t i = 0; i < grads.size(); ++i) {
      int owner = owners.empty() ? -1 : owners[i];
      groups[{owner, static_cast<int>(grads[i].scalar_type()), grads[i].device().str()}].push_back(i);
    }
    for (auto& [key, idx] : groups) {
      std::vector<at::Tensor> pieces;
      for (size_t i : idx) pieces.push_back(grads[i].reshape({-1}));
      at::Tensor flat = at::cat(pieces);
      if (options.reduction == Reduction::Mean) flat.div_(static_cast<double>(group->world_size()));
      const int owner = std::get<0>(key);
      if (owner < 0) group->all_reduce_sum(flat);
      else group->reduce_sum(flat, owner);
      if (owner >= 0 && owner != group->rank()) continue;
      int64_t offset = 0;
      for (size_t i : idx) {
        const int64_t n = grads[i].numel();
        grads[i].copy_(flat.narrow(0, offset, n).view(grads[i].sizes()));
        offset += n;
      }
    }
  }
};

namespace {

struct ReadyHook : torch::autograd::PostAccumulateGradHook {
  ReadyHook(DataParallel::State* s, size_t i) : state(s), index(i) {}
  void operator()(const torch::autograd::Variable& tensor) override { state->on_grad(index, tensor); }
  DataParallel::State* state;
  size_t index;
};

}  // namespace

DataParallel::DataParallel(ProcessGroup* group, std::vector<std::pair<std::string, at::Tensor>> named_params,
                           DataParallelOptions options)
    : state_(std::make_unique<State>()) {
  State& s = *state_;
  s.group = group;
  s.options = std::move(options);
  if (!s.options.owners.empty() && s.options.owners.size() != named_params.size())
    throw UsageError(str("data parallel: ", s.options.owners.size(), " owners for ", named_params.size(), " parameters"));
  if (s.options.bucket_mb <= 0) throw UsageError(str("data parallel: bucket_mb must be positive, got ", s.options.bucket_mb));
  for (size_t i = 0; i < named_params.size(); ++i) {
    ParamSlot p;
    p.name = named_params[i].first;
    p.tensor = named_params[i].second;
    p.owner = s.options.owners.empty() ? -1 : s.options.owners[i];
    if (group && (p.owner < -1 || p.owner >= group->world_size()))
      throw UsageError(str("data parallel: owner ", p.owner, " of ", p.name, " is not a rank"));
    s.params.push_back(std::move(p));
  }
  if (!s.active()) return;

  // Buckets in reverse registration order; a bucket holds one dtype, one device and one owner.
  const double cap = s.options.bucket_mb * 1024.0 * 1024.0;
  double bytes = 0;
  for (size_t k = s.params.size(); k-- > 0;) {
    ParamSlot& p = s.params[k];
    const double nbytes = static_cast<double>(p.tensor.numel()) * static_cast<double>(p.tensor.element_size());
    bool open_new = s.buckets.empty();
    if (!open_new) {
      const ParamSlot& last = s.params[s.buckets.back().params.back()];
      open_new = last.owner != p.owner || last.tensor.scalar_type() != p.tensor.scalar_type() ||
                 last.tensor.device() != p.tensor.device() || bytes + nbytes > cap;
    }
    if (open_new) {
      s.buckets.emplace_back();
      s.buckets.back().owner = p.owner;
      bytes = 0;
    }
    Bucket& b = s.buckets.back();
    p.bucket = s.buckets.size() - 1;
    p.offset = 0;
    for (size_t j : b.params) p.offset += s.params[j].tensor.numel();
    b.params.push_back(k);
    bytes += nbytes;
  }
  for (Bucket& b : s.buckets) {
    int64_t n = 0;
    for (size_t j : b.params) n += s.params[j].tensor.numel();
    b.numel = n;
    b.options = s.params[b.params.front()].tensor.options().requires_grad(false);
    b.pending = static_cast<int64_t>(b.params.size());
  }
  if (s.options.overlap) {
    for (size_t i = 0; i < s.params.size(); ++i) {
      MATHRL_CHECK(s.params[i].tensor.is_leaf() && s.params[i].tensor.requires_grad(),
                   "data parallel: ", s.params[i].name, " is not a trainable leaf tensor");
      torch::autograd::impl::set_post_acc_grad_hooks(s.params[i].tensor, std::make_unique<ReadyHook>(&s, i));
    }
    s.hooked = true;
  }
}

DataParallel::~DataParallel() {
  if (!state_->hooked) return;
  for (auto& p : state_->params) torch::autograd::impl::set_post_acc_grad_hooks(p.tensor, nullptr);
}

void DataParallel::set_sync(bool on) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->sync = on;
}

bool DataParallel::sync() const { return state_->sync; }

bool DataParallel::active() const { return state_->active(); }

int64_t DataParallel::bucket_count() const { return static_cast<int64_t>(state_->buckets.size()); }

int64_t DataParallel::buckets_launched_in_backward() const { return state_->last_launched_in_backward; }

void DataParallel::finish() {
  State& s = *state_;
  if (!s.active()) return;
  std::lock_guard<std::mutex> lock(s.mu);
  at::NoGradGuard no_grad;
  const int rank = s.group->rank();
  if (!s.options.overlap) {
    std::vector<at::Tensor> grads;
    std::vector<int> owners;
    for (auto& p : s.params) {
      if (!p.tensor.grad().defined()) p.tensor.mutable_grad() = at::zeros_like(p.tensor);
      grads.push_back(p.tensor.grad());
      owners.push_back(p.owner);
    }
    s.reduce_flat(grads, s.options.owners.empty() ? std::vector<int>{} : owners);
    if (!s.options.owners.empty())
      for (auto& p : s.params)
        if (p.owner != rank) p.tensor.mutable_grad() = at::Tensor();
    return;
  }
  // Parameters whose hook did not fire (unused in the last micro-step) contribute their current grad.
  for (Bucket& b : s.buckets)
    for (size_t j : b.params)
      if (!s.params[j].ready) s.mark_ready(j, s.params[j].tensor.grad(), false);
  s.launch_ready(false);
  MATHRL_CHECK(s.next_launch == s.buckets.size(), "data parallel: a bucket was not launched");
  for (Bucket& b : s.buckets) s.complete(b);
  for (ParamSlot& p : s.params) {
    if (p.owner >= 0 && p.owner != rank) p.tensor.mutable_grad() = at::Tensor();
    p.ready = false;
  }
  for (Bucket& b : s.buckets) {
    b.pending = static_cast<int64_t>(b.params.size());
    b.launched = false;
    b.flat = at::Tensor();
  }
  s.next_launch = 0;
  s.released = 0;
  s.last_launched_in_backward = s.launched_in_backward;
  s.launched_in_backward = 0;
}

void DataParallel::sync_grads(std::vector<at::Tensor>& grads) {
  if (!state_->active()) return;
  state_->reduce_flat(grads, {});
}

std::function<void(std::vector<at::Tensor>&)> DataParallel::grad_hook() {
  return [this](std::vector<at::Tensor>& grads) { sync_grads(grads); };
}

std::vector<std::pair<std::string, at::Tensor>> trainable_parameters(torch::nn::Module& module) {
  std::vector<std::pair<std::string, at::Tensor>> named;
  for (const auto& item : module.named_parameters(true))
    if (item.value().requires_grad()) named.emplace_back(item.key(), item.value());
  return named;
}

void broadcast_parameters(ProcessGroup& group, const std::vector<at::Tensor>& params, int root) {
  if (group.world_size() == 1 || params.empty()) return;
  at::NoGradGuard no_grad;
  std::map<std::pair<int, std::string>, std::vector<size_t>> groups;
  for (size_t i = 0; i < params.size(); ++i)
    groups[{static_cast<int>(params[i].scalar_type()), params[i].device().str()}].push_back(i);
  for (auto& [key, idx] : groups) {
    std::vector<at::Tensor> pieces;
    for (size_t i : idx) pieces.push_back(params[i].detach().reshape({-1}));
    at::Tensor flat = at::cat(pieces);
    group.broadcast(flat, root);
    int64_t offset = 0;
    for (size_t i : idx) {
      at::Tensor p = params[i].detach();
      p.copy_(flat.narrow(0, offset, p.numel()).view(p.sizes()));
      offset += p.numel();
    }
  }
}

double replica_divergence(ProcessGroup& group, const std::vector<at::Tensor>& params) {
  if (group.world_size() == 1 || params.empty()) return 0.0;
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> prints;
  for (const auto& p : params) {
    at::Tensor d = p.detach().to(at::kDouble);
    prints.push_back(d.sum().reshape({1}));
    prints.push_back(d.pow(2).sum().reshape({1}));
  }
  at::Tensor hi = at::cat(prints), lo = -hi;
  group.all_reduce_max(hi);
  group.all_reduce_max(lo);
  return (hi + lo).max().cpu().item<double>();
}

// ---- data sharding ------------------------------------------------------------------------------

std::pair<int64_t, int64_t> shard_range(int64_t n, int rank, int world_size, int64_t group_size) {
  if (world_size < 1 || rank < 0 || rank >= world_size)
    throw UsageError(str("shard_range: rank ", rank, " is outside world size ", world_size));
  if (group_size < 1 || n < 0 || n % group_size != 0)
    throw UsageError(str("shard_range: ", n, " items do not form whole groups of ", group_size));
  const int64_t groups = n / group_size;
  const int64_t begin = groups * rank / world_size, end = groups * (rank + 1) / world_size;
  return {begin * group_size, end * group_size};
}

bool equal_shards(int64_t n, int world_size, int64_t group_size) {
  return group_size >= 1 && n % group_size == 0 && (n / group_size) % world_size == 0;
}

std::vector<int64_t> shard_indices(const std::vector<int64_t>& global, int rank, int world_size, int64_t group_size) {
  auto [begin, end] = shard_range(static_cast<int64_t>(global.size()), rank, world_size, group_size);
  return std::vector<int64_t>(global.begin() + begin, global.begin() + end);
}

}  // namespace mathrl::dist
