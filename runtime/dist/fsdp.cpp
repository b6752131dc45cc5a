#include "dist/fsdp.h"

#include <algorithm>
#include <cstdlib>
#include <map>

#include <torch/torch.h>

#include "common/error.h"
#include "dist/process_group.h"

namespace mathrl::dist {

namespace {

// "model.layers.<k>.<rest>" -> k; anything else -> -1 (outer).
int layer_of(const std::string& name) {
  const std::string prefix = "model.layers.";
  if (name.compare(0, prefix.size(), prefix) != 0) return -1;
  char* end = nullptr;
  const long k = std::strtol(name.c_str() + prefix.size(), &end, 10);
  return end && *end == '.' ? static_cast<int>(k) : -1;
}

}  // namespace

FullyShardedDecoder::FullyShardedDecoder(ProcessGroup* group, model::Decoder model, Reduction reduction)
    : group_(group), model_(std::move(model)), reduction_(reduction) {
  MATHRL_CHECK(group_, "FullyShardedDecoder needs a process group");
  MATHRL_CHECK(!model_->layer_parameter_host(), "this model is already sharded");
  const int world = group_->world_size(), rank = group_->rank();
  units_.resize(static_cast<size_t>(model_->config().num_hidden_layers));
  at::NoGradGuard no_grad;
  for (auto& item : model_->named_parameters(/*recurse=*/true)) {
    Param p;
    p.name = item.key();
    p.param = item.value();
    p.shape = p.param.sizes().vec();
    p.unit = layer_of(p.name);
    at::Tensor full = p.param.dim() == 0 ? p.param.detach().reshape({1}) : p.param.detach();
    const int64_t rows = full.size(0);
    p.rows_per_rank = (rows + world - 1) / world;
    std::vector<int64_t> piece_shape = full.sizes().vec();
    piece_shape[0] = p.rows_per_rank;
    p.shard = at::zeros(piece_shape, full.options());
    const int64_t begin = std::min(rows, rank * p.rows_per_rank);
    const int64_t end = std::min(rows, (rank + 1) * p.rows_per_rank);
    if (end > begin) p.shard.narrow(0, 0, end - begin).copy_(full.narrow(0, begin, end - begin));
    p.shard.requires_grad_(p.param.requires_grad());
    const size_t index = params_.size();
    if (p.unit >= 0) {
      MATHRL_CHECK(p.unit < static_cast<int>(units_.size()), "parameter ", p.name, " of a layer the config does not have");
      units_[static_cast<size_t>(p.unit)].push_back(index);
    } else {
      outer_.push_back(index);
    }
    params_.push_back(std::move(p));
  }
  for (Param& p : params_) p.param.set_data(at::empty({0}, p.shard.options().requires_grad(false)));
  model_->set_layer_parameter_host(this);
}

FullyShardedDecoder::~FullyShardedDecoder() {
  if (model_->layer_parameter_host() == this) model_->set_layer_parameter_host(nullptr);
}

std::vector<std::pair<std::string, at::Tensor>> FullyShardedDecoder::shards() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const Param& p : params_)
    if (p.shard.requires_grad()) out.emplace_back(p.name, p.shard);
  return out;
}

std::vector<at::Tensor> FullyShardedDecoder::shard_grads() const {
  std::vector<at::Tensor> out;
  for (const Param& p : params_) {
    if (!p.shard.requires_grad()) continue;
    const at::Tensor& g = p.shard.grad();
    out.push_back(g.defined() ? g : at::zeros(p.shard.sizes(), p.shard.options().dtype(at::kFloat)));
  }
  return out;
}

at::Tensor FullyShardedDecoder::gather(const Param& p) {
  std::vector<int64_t> padded = p.shard.sizes().vec();
  padded[0] = p.rows_per_rank * group_->world_size();
  at::Tensor full = at::empty(padded, p.shard.options().requires_grad(false));
  at::Tensor out = full.view({-1});
  group_->all_gather_flat(out, p.shard.detach().reshape({-1}));
  const int64_t rows = p.shape.empty() ? 1 : p.shape[0];
  return full.narrow(0, 0, rows).view(p.shape);  // rank pieces in order are the rows in order
}

void FullyShardedDecoder::set_full(Param& p) {
  at::NoGradGuard no_grad;
  if (p.param.numel() > 0) return;  // already gathered
  p.param.set_data(gather(p));
  gathered_ += p.bytes();
  peak_gathered_ = std::max(peak_gathered_, gathered_);
}

void FullyShardedDecoder::free_full(Param& p) {
  if (p.param.numel() > 0) gathered_ -= p.bytes();
  p.param.set_data(at::empty({0}, p.shard.options().requires_grad(false)));
}

int64_t FullyShardedDecoder::Param::bytes() const {
  int64_t e = 1;
  for (int64_t d : shape) e *= d;
  return e * static_cast<int64_t>(shard.element_size());
}

void FullyShardedDecoder::scatter_grad(Param& p, const at::Tensor& grad) {
  if (!p.shard.requires_grad()) return;
  at::NoGradGuard no_grad;
  const int world = group_->world_size();
  const int64_t rows = p.shape.empty() ? 1 : p.shape[0];
  std::vector<int64_t> padded_shape = p.shard.sizes().vec(), rows_shape = p.shard.sizes().vec();
  padded_shape[0] = p.rows_per_rank * world;
  rows_shape[0] = rows;
  const auto f32 = p.shard.options().dtype(at::kFloat).requires_grad(false);
  at::Tensor padded;
  if (grad.defined() && rows == padded_shape[0]) {
    padded = grad.detach().to(at::kFloat).reshape(padded_shape).contiguous();
  } else {
    padded = at::zeros(padded_shape, f32);
    if (grad.defined()) padded.narrow(0, 0, rows).copy_(grad.detach().reshape(rows_shape));
  }
  at::Tensor piece = at::empty(p.shard.sizes(), f32);
  at::Tensor flat = piece.view({-1});
  group_->reduce_scatter_sum(flat, padded.view({-1}));
  if (reduction_ == Reduction::Mean && world > 1) piece.div_(static_cast<double>(world));
  at::Tensor& g = p.shard.mutable_grad();
  if (g.defined()) g.add_(piece);
  else g = piece;
}

void FullyShardedDecoder::materialize(int64_t layer) {
  MATHRL_CHECK(layer >= 0 && layer < static_cast<int64_t>(units_.size()), "layer ", layer);
  for (size_t i : units_[static_cast<size_t>(layer)]) set_full(params_[i]);
}

void FullyShardedDecoder::release(int64_t layer) {
  MATHRL_CHECK(layer >= 0 && layer < static_cast<int64_t>(units_.size()), "layer ", layer);
  for (size_t i : units_[static_cast<size_t>(layer)]) free_full(params_[i]);
}

void FullyShardedDecoder::reduce_gradients(int64_t layer, std::vector<at::Tensor> grads) {
  MATHRL_CHECK(layer >= 0 && layer < static_cast<int64_t>(units_.size()), "layer ", layer);
  const auto& unit = units_[static_cast<size_t>(layer)];
  MATHRL_CHECK(grads.size() == unit.size(), "layer ", layer, ": ", grads.size(), " gradients for ", unit.size(),
               " parameters");
  for (size_t j = 0; j < unit.size(); ++j) scatter_grad(params_[unit[j]], grads[j]);
}

void FullyShardedDecoder::begin_step() {
  MATHRL_CHECK(!in_step_, "begin_step twice without finish_step");
  for (size_t i : outer_) set_full(params_[i]);
  in_step_ = true;
}

void FullyShardedDecoder::finish_step() {
  MATHRL_CHECK(in_step_, "finish_step without begin_step");
  for (size_t i : outer_) {
    Param& p = params_[i];
    scatter_grad(p, p.param.grad());
    if (p.param.grad().defined()) p.param.mutable_grad() = at::Tensor();
    free_full(p);
  }
  in_step_ = false;
}

void FullyShardedDecoder::for_each_full(const std::function<void(const std::string&, const at::Tensor&)>& fn) {
  at::NoGradGuard no_grad;
  for (const Param& p : params_) fn(p.name, gather(p));
}

void FullyShardedDecoder::gather_into(model::Decoder& target) {
  std::map<std::string, at::Tensor> by_name;
  for (auto& item : target->named_parameters(/*recurse=*/true)) by_name[item.key()] = item.value();
  for_each_full([&](const std::string& name, const at::Tensor& value) {
    auto it = by_name.find(name);
    if (it == by_name.end()) throw Error(str("gather_into: the target model has no parameter ", name));
    MATHRL_CHECK(it->second.sizes() == value.sizes(), name, ": target ", it->second.sizes(), " vs ", value.sizes());
    it->second.detach().copy_(value);
  });
}

int64_t FullyShardedDecoder::resident_bytes() const {
  int64_t n = 0;
  for (const Param& p : params_) n += (p.shard.numel() + p.param.numel()) * static_cast<int64_t>(p.shard.element_size());
  return n;
}

int64_t FullyShardedDecoder::full_bytes() const {
  int64_t n = 0;
  for (const Param& p : params_) n += p.bytes();
  return n;
}

int64_t FullyShardedDecoder::outer_bytes() const {
  int64_t n = 0;
  for (size_t i : outer_) n += params_[i].bytes();
  return n;
}

int64_t FullyShardedDecoder::largest_layer_bytes() const {
  int64_t most = 0;
  for (const auto& unit : units_) {
    int64_t n = 0;
    for (size_t i : unit) n += params_[i].bytes();
    most = std::max(most, n);
  }
  return most;
}

}  // namespace mathrl::dist
