// DecodeBackend over runtime/model's Decoder and KvCache (forward_cached), plus KV-cache sizing
// from a device-memory budget.
#pragma once
#include <cstdint>
#include <memory>

#include "model/transformer.h"
#include "sampler/backend.h"

namespace mathrl::sampler {

// On CUDA, decode steps run as CUDA graphs, one per batch-size bucket (1, 2, 4, ..., then steps
// of 1.5x), captured on first use: a step is then one graph launch instead of hundreds of kernel
// launches. Rows past the real batch are padded onto one scratch cache slot kept for that. Graphs
// need attention that reads the cache in place (kernels/flash_cached_attention.h or
// kernels/decode_attention.h); MATHRL_CUDA_GRAPHS=0 turns them off.
class ModelBackend : public DecodeBackend {
 public:
  // The cache takes `cache_dtype` (the model's parameter dtype when undefined-ish: pass it explicitly).
  ModelBackend(model::Decoder decoder, torch::Device device, torch::ScalarType cache_dtype);
  ~ModelBackend() override;

  int64_t vocab_size() const override { return config_.vocab_size; }
  int64_t max_context() const override { return config_.max_position_embeddings; }
  torch::Device device() const override { return device_; }
  void allocate(int64_t slots, int64_t max_len) override;
  torch::Tensor prefill(const torch::Tensor& ids, int64_t slot) override;
  void copy_prefix(int64_t src, int64_t dst, int64_t len) override;
  // Right-padded into one forward pass; positions past a prompt's end get keys/values that decode
  // overwrites before it ever reads them.
  std::vector<torch::Tensor> prefill_many(const std::vector<torch::Tensor>& ids, const std::vector<int64_t>& slots) override;
  void copy_prefix_to(int64_t src, const std::vector<int64_t>& dsts, int64_t len) override;
  void copy_positions(int64_t src, const std::vector<int64_t>& dsts, int64_t begin, int64_t end) override;
  // On by default on the CPU, off on CUDA (slower there than copies so far); MATHRL_SHARE_PREFIX=0
  // or 1 decides instead (model_backend.cpp).
  bool shares_prefixes() const override { return share_prefixes_; }
  void share_prefix(const std::vector<PrefixShare>& shares) override;
  torch::Tensor decode(const torch::Tensor& tokens, const torch::Tensor& positions, const torch::Tensor& slots) override;

  const model::ModelConfig& config() const { return config_; }
  model::Decoder& decoder() { return decoder_; }
  torch::ScalarType cache_dtype() const { return cache_dtype_; }
  bool cuda_graphs() const { return use_graphs_; }
  int64_t graphs_captured() const;

 private:
  int64_t padding_position() const { return share_prefixes_ ? 1 : 0; }
  torch::Tensor decode_eager(const torch::Tensor& tokens, const torch::Tensor& positions, const torch::Tensor& slots);
  struct Graphs;  // CUDA-only state
  std::unique_ptr<Graphs> graphs_;
  bool use_graphs_ = false;
  bool share_prefixes_ = true;
  int64_t scratch_slot_ = -1;
  model::Decoder decoder_;
  model::ModelConfig config_;
  torch::Device device_;
  torch::ScalarType cache_dtype_;
  model::KvCache cache_;
};

// Bytes of K and V per cached position, all layers.
int64_t kv_bytes_per_position(const model::ModelConfig& c, torch::ScalarType dtype);
// Bytes of the model's parameters in `dtype`.
int64_t weight_bytes(const model::ModelConfig& c, torch::ScalarType dtype);

// Free memory on a CUDA device as the driver reports it (cudaMemGetInfo) plus what PyTorch's
// caching allocator holds but does not use; 0 on CPU or without CUDA.
int64_t free_device_bytes(const torch::Device& device);

// How many sequences of `max_len` positions fit in `fraction` of the free device memory, leaving
// `reserve_bytes` for activations and logits. At least 1, at most `wanted`. On CPU returns `wanted`.
int64_t slots_for_memory_budget(const model::ModelConfig& c, torch::ScalarType dtype, const torch::Device& device,
                                int64_t max_len, int64_t wanted, double fraction = 0.9, int64_t reserve_bytes = 1ll << 30);

}  // namespace mathrl::sampler
