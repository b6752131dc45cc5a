#include "dist/zero.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>

#include <torch/torch.h>

#include "common/error.h"
#include "dist/process_group.h"
#include "model/safetensors.h"

namespace mathrl::dist {

Partition Partition::balanced(const std::vector<int64_t>& numels, int world_size) {
  MATHRL_CHECK(world_size >= 1, "partition: world size ", world_size);
  Partition p;
  p.numel.assign(static_cast<size_t>(world_size), 0);
  double total = 0;
  for (int64_t n : numels) total += static_cast<double>(n);
  double before = 0;
  for (int64_t n : numels) {
    const double mid = before + static_cast<double>(n) / 2.0;
    int r = total > 0 ? static_cast<int>(mid * world_size / total) : 0;
    r = std::min(std::max(r, 0), world_size - 1);
    p.owner.push_back(r);
    p.numel[static_cast<size_t>(r)] += n;
    before += static_cast<double>(n);
  }
  return p;
}

std::vector<size_t> Partition::owned(int rank) const {
  std::vector<size_t> out;
  for (size_t i = 0; i < owner.size(); ++i)
    if (owner[i] == rank) out.push_back(i);
  return out;
}

train::StepResult step_with_global_norm(ProcessGroup& group, train::AdamW& local, std::vector<at::Tensor> grads,
                                        double clip, double lr, double loss) {
  at::NoGradGuard no_grad;
  MATHRL_CHECK(local.options().clip <= 0, "step_with_global_norm: the local optimizer must not clip");
  const at::Device device = local.params().front().device();
  at::Tensor sq = at::zeros({}, at::TensorOptions().dtype(at::kDouble).device(device));
  if (!grads.empty()) {
    std::vector<at::Tensor> norms = at::_foreach_norm(grads, 2, at::kFloat);
    sq = at::stack(norms).to(at::kDouble).pow(2).sum();
  }
  at::Tensor agree = at::stack({sq, at::full({}, std::isfinite(loss) ? 0.0 : 1.0, sq.options())});
  group.all_reduce_sum(agree);
  agree = agree.cpu();
  const double norm = std::sqrt(agree[0].item<double>());
  const bool bad = agree[1].item<double>() > 0 || !std::isfinite(norm);
  train::StepResult r;
  if (bad) {
    r = local.step(lr, std::numeric_limits<double>::quiet_NaN());  // counted by the guard, on every rank
  } else {
    if (clip > 0 && norm > clip && !grads.empty()) at::_foreach_mul_(grads, clip / (norm + 1e-6));
    r = local.step(lr, loss);
  }
  r.grad_norm = norm;
  return r;
}

ShardedAdamW::ShardedAdamW(ProcessGroup* group, std::vector<std::pair<std::string, at::Tensor>> named_params,
                           train::AdamWOptions adam, ZeroOptions zero)
    : group_(group), zero_(zero), clip_(adam.clip) {
  MATHRL_CHECK(group_, "ShardedAdamW needs a process group");
  if (zero_.stage != 1 && zero_.stage != 2) throw UsageError(str("ZeRO stage must be 1 or 2, got ", zero_.stage));
  std::vector<int64_t> numels;
  for (auto& [name, p] : named_params) {
    names_.push_back(name);
    params_.push_back(p);
    numels.push_back(p.numel());
  }
  const int world = group_->world_size();
  partition_ = Partition::balanced(numels, world);
  for (int r = 0; r < world; ++r)
    if (partition_.numel[static_cast<size_t>(r)] == 0)
      throw UsageError(str("ZeRO: rank ", r, " would own no parameters (", params_.size(), " parameters over ", world,
                           " ranks); use fewer ranks or plain data parallelism"));
  mine_ = partition_.owned(group_->rank());
  std::vector<std::pair<std::string, at::Tensor>> local;
  for (size_t i : mine_) local.emplace_back(names_[i], params_[i]);
  adam.clip = 0;  // clipped here, with the global norm
  local_ = std::make_unique<train::AdamW>(std::move(local), adam);
  if (zero_.reduce_grads) {
    DataParallelOptions o;
    o.overlap = false;
    o.reduction = zero_.reduction;
    if (zero_.stage == 2) o.owners = partition_.owner;
    reducer_ = std::make_unique<DataParallel>(group_, std::move(named_params), o);
  }
}

ShardedAdamW::~ShardedAdamW() = default;

void ShardedAdamW::zero_grad() {
  for (auto& p : params_)
    if (p.grad().defined()) p.mutable_grad() = at::Tensor();
}

train::StepResult ShardedAdamW::step(double lr, double loss) {
  at::NoGradGuard no_grad;
  if (reducer_) reducer_->finish();
  // Only the owned gradients matter from here on (stage 1 drops the rest now).
  std::vector<bool> is_mine(params_.size(), false);
  for (size_t i : mine_) is_mine[i] = true;
  for (size_t i = 0; i < params_.size(); ++i)
    if (!is_mine[i] && params_[i].grad().defined()) params_[i].mutable_grad() = at::Tensor();

  std::vector<at::Tensor> grads;
  for (size_t i : mine_) {
    at::Tensor& g = params_[i].mutable_grad();
    // float32 gradients for the owned shard: clipping then loses nothing to bf16 rounding.
    if (g.defined() && g.scalar_type() != at::kFloat) g = g.to(at::kFloat);
    if (g.defined()) grads.push_back(g);
  }
  train::StepResult r = step_with_global_norm(*group_, *local_, grads, clip_, lr, loss);
  if (r.applied) broadcast_from_owners();
  zero_grad();
  return r;
}

void ShardedAdamW::broadcast_from_owners() {
  if (group_->world_size() == 1) return;
  struct Group {
    std::vector<size_t> idx;
    at::Tensor flat;
    int root;
  };
  std::vector<Group> groups;
  std::map<std::pair<int, int>, size_t> index;  // (owner, dtype) -> group
  for (size_t i = 0; i < params_.size(); ++i) {
    auto key = std::make_pair(partition_.owner[i], static_cast<int>(params_[i].scalar_type()));
    auto it = index.find(key);
    if (it == index.end()) {
      it = index.emplace(key, groups.size()).first;
      groups.push_back({{}, {}, partition_.owner[i]});
    }
    groups[it->second].idx.push_back(i);
  }
  std::vector<Work> works;
  for (Group& g : groups) {
    if (g.root == group_->rank()) {
      std::vector<at::Tensor> pieces;
      for (size_t i : g.idx) pieces.push_back(params_[i].detach().reshape({-1}));
      g.flat = at::cat(pieces);
    } else {
      int64_t n = 0;
      for (size_t i : g.idx) n += params_[i].numel();
      g.flat = at::empty({n}, params_[g.idx.front()].options().requires_grad(false));
    }
    works.push_back(group_->broadcast_async(g.flat, g.root));
  }
  for (auto& w : works) w.wait();
  for (Group& g : groups) {
    if (g.root == group_->rank()) continue;
    int64_t offset = 0;
    for (size_t i : g.idx) {
      at::Tensor p = params_[i].detach();
      p.copy_(g.flat.narrow(0, offset, p.numel()).view(p.sizes()));
      offset += p.numel();
    }
  }
}

void ShardedAdamW::save(const std::string& path) {
  const std::string shard = str(path, ".rank", group_->rank(), ".part");
  local_->save(shard);
  group_->barrier();
  std::string error;
  if (group_->is_main()) {
    try {
      std::vector<std::unique_ptr<model::MappedSafetensors>> files;
      std::vector<model::TensorBytes> tensors;
      for (int r = 0; r < group_->world_size(); ++r) {
        files.push_back(std::make_unique<model::MappedSafetensors>(str(path, ".rank", r, ".part")));
        const auto& f = *files.back();
        for (const auto& e : f.header().tensors)
          tensors.push_back({e.name, e.dtype, e.shape, f.data(e), static_cast<size_t>(e.end - e.begin)});
      }
      model::write_safetensors(path, std::move(tensors), files.front()->header().metadata);
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  group_->barrier();
  std::remove(shard.c_str());
  // Every rank learns whether the merge worked, so none goes on believing in a missing file.
  at::Tensor failed = at::full({1}, error.empty() ? 0.0 : 1.0, at::TensorOptions().device(params_.front().device()));
  group_->all_reduce_max(failed);
  if (failed.cpu().item<double>() > 0)
    throw Error(str("ZeRO: writing the optimizer state ", path, " failed", error.empty() ? "" : ": ", error));
}

void ShardedAdamW::load(const std::string& path) { local_->load(path); }

train::ExtraWriter ShardedAdamW::save_for_checkpoint(const std::string& checkpoints_dir, int64_t step) {
  std::string merged = str(checkpoints_dir, "/optimizer.step-", step, ".merging");
  save(merged);
  return [merged](const std::string& dir) { std::filesystem::rename(merged, dir + "/" + train::kOptimizerFile); };
}

void ShardedAdamW::load_from_checkpoint(const std::string& checkpoint_dir) {
  const std::string file = checkpoint_dir + "/" + train::kOptimizerFile;
  if (std::filesystem::exists(file)) load(file);
}

}  // namespace mathrl::dist
