#include "sampler/model_backend.h"

#include <algorithm>

#if __has_include(<c10/cuda/CUDACachingAllocator.h>) && __has_include(<cuda_runtime_api.h>)
#include <c10/cuda/CUDACachingAllocator.h>
#include <cuda_runtime_api.h>
#define MATHRL_SAMPLER_CUDA 1
#endif

#include "common/error.h"

namespace mathrl::sampler {

ModelBackend::ModelBackend(model::Decoder decoder, torch::Device device, torch::ScalarType cache_dtype)
    : decoder_(std::move(decoder)), config_(decoder_->config()), device_(device), cache_dtype_(cache_dtype) {
  decoder_->eval();
}

void ModelBackend::allocate(int64_t slots, int64_t max_len) {
  cache_ = model::KvCache();  // free the old cache before the new one is allocated
  cache_ = model::KvCache::allocate(config_, slots, max_len, cache_dtype_, device_);
}

torch::Tensor ModelBackend::prefill(const torch::Tensor& ids, int64_t slot) {
  torch::NoGradGuard no_grad;
  const int64_t L = ids.size(0);
  auto positions = torch::arange(L, ids.options()).unsqueeze(0);
  auto slots = torch::full({1}, slot, ids.options());
  auto hidden = decoder_->forward_cached(ids.unsqueeze(0), positions, slots, cache_);
  // Only the last position's logits are needed: the LM head runs on one row.
  return decoder_->logits(hidden.narrow(1, L - 1, 1)).reshape({-1});
}

void ModelBackend::copy_prefix(int64_t src, int64_t dst, int64_t len) { cache_.copy_prefix(src, dst, len); }

torch::Tensor ModelBackend::decode(const torch::Tensor& tokens, const torch::Tensor& positions, const torch::Tensor& slots) {
  torch::NoGradGuard no_grad;
  auto hidden = decoder_->forward_cached(tokens.unsqueeze(1), positions.unsqueeze(1), slots, cache_);
  return decoder_->logits(hidden).squeeze(1);
}

int64_t kv_bytes_per_position(const model::ModelConfig& c, torch::ScalarType dtype) {
  return 2 * c.num_hidden_layers * c.num_key_value_heads * c.head_size() *
         static_cast<int64_t>(c10::elementSize(dtype));
}

int64_t weight_bytes(const model::ModelConfig& c, torch::ScalarType dtype) {
  return c.parameter_count() * static_cast<int64_t>(c10::elementSize(dtype));
}

int64_t free_device_bytes(const torch::Device& device) {
#ifdef MATHRL_SAMPLER_CUDA
  if (!device.is_cuda() || !torch::cuda::is_available()) return 0;
  size_t free = 0, total = 0;
  int previous = 0;
  cudaGetDevice(&previous);
  cudaSetDevice(device.has_index() ? device.index() : 0);
  cudaMemGetInfo(&free, &total);
  cudaSetDevice(previous);
  // Blocks the caching allocator reserved but does not use are free for our purposes too.
  auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.has_index() ? device.index() : 0);
  using Stat = c10::CachingAllocator::StatType;
  auto idx = static_cast<size_t>(Stat::AGGREGATE);
  int64_t cached_unused = stats.reserved_bytes[idx].current - stats.allocated_bytes[idx].current;
  return static_cast<int64_t>(free) + std::max<int64_t>(cached_unused, 0);
#else
  (void)device;
  return 0;
#endif
}

int64_t slots_for_memory_budget(const model::ModelConfig& c, torch::ScalarType dtype, const torch::Device& device,
                                int64_t max_len, int64_t wanted, double fraction, int64_t reserve_bytes) {
  if (!device.is_cuda()) return std::max<int64_t>(wanted, 1);
  const int64_t budget = static_cast<int64_t>(static_cast<double>(free_device_bytes(device)) * fraction) - reserve_bytes;
  const int64_t per_slot = kv_bytes_per_position(c, dtype) * std::max<int64_t>(max_len, 1);
  const int64_t fit = per_slot > 0 ? budget / per_slot : wanted;
  if (fit < 1)
    throw Error(str("KV cache: one sequence of ", max_len, " positions needs ", per_slot >> 20, " MiB but only ",
                    std::max<int64_t>(budget, 0) >> 20, " MiB of the device memory budget is free"));
  return std::clamp<int64_t>(fit, 1, std::max<int64_t>(wanted, 1));
}

}  // namespace mathrl::sampler
