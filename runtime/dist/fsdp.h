// ZeRO-3 / FSDP-style parameter sharding of a model::Decoder.
//
// Every parameter is cut along dim 0 into world_size pieces of ceil(rows / W) rows (the last ones
// padded with zero rows); rank r keeps piece r as a leaf tensor of its own (`shards()`: what its
// optimizer steps, so master weights and moments are 1/W too) and the model's parameter tensors
// are emptied. Per-parameter dim-0 pieces keep each parameter's name and rank, so the weight-decay
// rule (matrices decay, vectors do not) and checkpoints by name work unchanged.
//
// A decoder layer's parameters are all-gathered just before the layer runs and freed right after,
// in forward and again in backward, which recomputes the layer from its saved input (as activation
// checkpointing does: one more forward of compute); the layer's gradients are reduce-scattered into
// the shards' gradients as soon as its backward is done (model::LayerParameterHost). The outer
// parameters (embeddings, final norm, LM and value heads) are gathered for a whole step:
// begin_step() before the first forward, finish_step() after the last backward reduce-scatters
// their gradients and frees them. Between steps a rank holds 1/W of the parameters; during a step,
// the outer parameters and one layer in full.
//
// Gradients accumulate in float32 in the shards' .grad over the micro-batches of a step; they are
// summed over ranks (Reduction::Sum: each rank's loss already divided by the global normalizer, as
// train::Trainer does) or averaged (Mean). Step with step_with_global_norm (dist/zero.h) over a
// train::AdamW of the shards built with clip 0: the norm, the clip and the non-finite guard are
// global there.
//
// The model's parameters must be equal on every rank when this is built (broadcast_parameters, or
// the same checkpoint). Collectives are one per parameter (blocking), in the same order on every
// rank. No-grad forwards (evaluation, reference scoring, generation) gather and free layer by
// layer too, between begin_step() and finish_step().
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "dist/data_parallel.h"
#include "model/transformer.h"

namespace mathrl::dist {

class ProcessGroup;

class FullyShardedDecoder : public model::LayerParameterHost {
 public:
  FullyShardedDecoder(ProcessGroup* group, model::Decoder model, Reduction reduction = Reduction::Mean);
  // Detaches from the model, whose parameters stay empty (gather_full() first to keep them).
  ~FullyShardedDecoder() override;
  FullyShardedDecoder(const FullyShardedDecoder&) = delete;
  FullyShardedDecoder& operator=(const FullyShardedDecoder&) = delete;

  // This rank's pieces, by the parameters' names, in registration order.
  std::vector<std::pair<std::string, at::Tensor>> shards() const;
  // Their gradients (float32, zeros where none arrived), for step_with_global_norm.
  std::vector<at::Tensor> shard_grads() const;

  void begin_step();   // collective: gathers the outer parameters
  void finish_step();  // collective: their gradients into the shards; frees them
  bool in_step() const { return in_step_; }

  // Collective: every parameter's full value in turn (valid during the call only).
  void for_each_full(const std::function<void(const std::string& name, const at::Tensor& value)>& fn);
  // Collective: writes the full values into `target`'s parameters of the same names (a model of
  // the same configuration: checkpoints, evaluation, a reference copy).
  void gather_into(model::Decoder& target);

  // Bytes of parameter values this rank holds now: its shards plus whatever is gathered.
  int64_t resident_bytes() const;
  int64_t full_bytes() const;  // of the whole unsharded model
  // The most bytes of full (gathered) values held at once so far, and what the design allows:
  // the outer parameters plus the largest layer.
  int64_t peak_gathered_bytes() const { return peak_gathered_; }
  int64_t outer_bytes() const;
  int64_t largest_layer_bytes() const;

  // model::LayerParameterHost
  void materialize(int64_t layer) override;
  void release(int64_t layer) override;
  void reduce_gradients(int64_t layer, std::vector<at::Tensor> grads) override;

 private:
  struct Param {
    std::string name;
    at::Tensor param;  // the model's tensor: empty, or the full value while gathered
    at::Tensor shard;  // this rank's piece [rows_per_rank, ...], a leaf with requires_grad
    std::vector<int64_t> shape;
    int64_t rows_per_rank = 0;
    int unit = -1;     // layer index; -1: outer
    int64_t bytes() const;  // of the full value
  };
  at::Tensor gather(const Param& p);  // the full value [rows, ...]
  void scatter_grad(Param& p, const at::Tensor& grad);
  void set_full(Param& p);
  void free_full(Param& p);

  ProcessGroup* group_;
  model::Decoder model_;
  Reduction reduction_;
  std::vector<Param> params_;
  std::vector<std::vector<size_t>> units_;  // parameter indices per layer
  std::vector<size_t> outer_;
  bool in_step_ = false;
  int64_t gathered_ = 0, peak_gathered_ = 0;
};

}  // namespace mathrl::dist
