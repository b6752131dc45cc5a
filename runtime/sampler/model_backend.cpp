#include "sampler/model_backend.h"

#include <algorithm>

#include <cstdlib>
#include <map>

#if __has_include(<c10/cuda/CUDACachingAllocator.h>) && __has_include(<cuda_runtime_api.h>)
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#define MATHRL_SAMPLER_CUDA 1
#endif

#include "common/error.h"

namespace mathrl::sampler {

struct ModelBackend::Graphs {
#ifdef MATHRL_SAMPLER_CUDA
  struct Captured {
    std::unique_ptr<at::cuda::CUDAGraph> graph;
    torch::Tensor logits;  // [bucket, V], written by every replay
  };
  std::map<int64_t, Captured> by_bucket;
  torch::Tensor tokens, positions, slots;  // static inputs [max bucket]
  at::cuda::MempoolId_t pool{0, 0};
#endif
};

namespace {

bool env_is(const char* name, const char* value) {
  const char* v = std::getenv(name);
  return v && std::string(v) == value;
}

// 1, 2, 4, 8, 16, then about 1.5x apart (multiples of 16): few graphs, at most ~1/3 padding.
int64_t bucket_for(int64_t batch, int64_t max_bucket) {
  int64_t b = 1;
  while (b < batch && b < 16) b *= 2;
  while (b < batch) b = ((b * 3 / 2) + 15) / 16 * 16;
  return std::min(b, max_bucket);
}

// Shared prefixes save the prompt copies and let a prompt's samples read one copy of its KV. On
// the CPU that is faster (the in-place decode loop reads the prompt's rows from cache once per
// prompt: ~20% more tokens/s on the pipeline's model); on an H200 FlashAttention's two calls (each
// padding a decode row's query heads to its 128-row tile) made 0.5B decode 10-15% slower
// (scripts/gpu_notes.md, stop 19). So the default follows the device; MATHRL_SHARE_PREFIX=0 or 1
// decides instead.
bool share_prefixes_on(const torch::Device& device) {
  if (env_is("MATHRL_SHARE_PREFIX", "1")) return true;
  if (env_is("MATHRL_SHARE_PREFIX", "0")) return false;
  return device.is_cpu();
}

}  // namespace

ModelBackend::ModelBackend(model::Decoder decoder, torch::Device device, torch::ScalarType cache_dtype)
    : decoder_(std::move(decoder)), config_(decoder_->config()), device_(device), cache_dtype_(cache_dtype),
      graphs_(std::make_unique<Graphs>()), share_prefixes_(share_prefixes_on(device)) {
  decoder_->eval();
}

ModelBackend::~ModelBackend() = default;

int64_t ModelBackend::graphs_captured() const {
#ifdef MATHRL_SAMPLER_CUDA
  return static_cast<int64_t>(graphs_->by_bucket.size());
#else
  return 0;
#endif
}

void ModelBackend::allocate(int64_t slots, int64_t max_len) {
  graphs_ = std::make_unique<Graphs>();  // graphs captured against the old cache are invalid now
  cache_ = model::KvCache();  // free the old cache before the new one is allocated
  // With graphs, one extra slot takes the padding rows of a bucket.
  const bool may_graph = device_.is_cuda() && !env_is("MATHRL_CUDA_GRAPHS", "0");
  cache_ = model::KvCache::allocate(config_, slots + (may_graph ? 1 : 0), max_len, cache_dtype_, device_, share_prefixes_);
  use_graphs_ = may_graph && decoder_->attends_cache_in_place(cache_, 1);
  scratch_slot_ = use_graphs_ ? slots : -1;
  // Padding rows decode position 1 of the scratch slot with a one-position prefix, so neither
  // part of a shared-prefix attention is empty for them (decode runs only when max_len >= 2).
  if (use_graphs_ && share_prefixes_) cache_.share_prefix({scratch_slot_}, {scratch_slot_}, {1});
}

void ModelBackend::share_prefix(const std::vector<PrefixShare>& shares) {
  std::vector<int64_t> rows, sources, lens;
  for (const auto& s : shares) rows.push_back(s.slot), sources.push_back(s.source), lens.push_back(s.len);
  cache_.share_prefix(rows, sources, lens);
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

void ModelBackend::copy_prefix_to(int64_t src, const std::vector<int64_t>& dsts, int64_t len) {
  cache_.copy_prefix_to(src, dsts, len);
}

void ModelBackend::copy_positions(int64_t src, const std::vector<int64_t>& dsts, int64_t begin, int64_t end) {
  cache_.copy_positions_to(src, dsts, begin, end);
}

std::vector<torch::Tensor> ModelBackend::prefill_many(const std::vector<torch::Tensor>& ids, const std::vector<int64_t>& slots) {
  if (ids.size() <= 1) return DecodeBackend::prefill_many(ids, slots);
  torch::NoGradGuard no_grad;
  const auto P = static_cast<int64_t>(ids.size());
  int64_t longest = 0;
  std::vector<int64_t> last(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    longest = std::max(longest, ids[i].size(0));
    last[i] = ids[i].size(0) - 1;
  }
  auto opts = torch::TensorOptions().dtype(torch::kInt64).device(device_);
  auto batch = torch::zeros({P, longest}, opts);
  for (int64_t i = 0; i < P; ++i) batch[i].narrow(0, 0, ids[static_cast<size_t>(i)].size(0)).copy_(ids[static_cast<size_t>(i)]);
  auto positions = torch::arange(longest, opts).unsqueeze(0).expand({P, longest}).contiguous();
  auto hidden = decoder_->forward_cached(batch, positions, torch::tensor(slots, torch::kInt64).to(device_), cache_);
  // Only each prompt's last position goes through the LM head.
  auto rows = hidden.index({torch::arange(P, opts), torch::tensor(last, torch::kInt64).to(device_)});  // [P, H]
  auto logits = decoder_->logits(rows);
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < P; ++i) out.push_back(logits[i]);
  return out;
}

torch::Tensor ModelBackend::decode_eager(const torch::Tensor& tokens, const torch::Tensor& positions,
                                         const torch::Tensor& slots) {
  torch::NoGradGuard no_grad;
  auto hidden = decoder_->forward_cached(tokens.unsqueeze(1), positions.unsqueeze(1), slots, cache_);
  return decoder_->logits(hidden).squeeze(1);
}

torch::Tensor ModelBackend::decode(const torch::Tensor& tokens, const torch::Tensor& positions, const torch::Tensor& slots) {
#ifdef MATHRL_SAMPLER_CUDA
  if (use_graphs_) {
    torch::NoGradGuard no_grad;
    const int64_t B = tokens.size(0), max_bucket = scratch_slot_;  // scratch_slot_ == number of real slots
    const int64_t bucket = bucket_for(B, std::max<int64_t>(max_bucket, 1));
    Graphs& g = *graphs_;
    if (!g.tokens.defined()) {
      auto opts = torch::TensorOptions().dtype(torch::kInt64).device(device_);
      g.tokens = torch::zeros({max_bucket}, opts);
      g.positions = torch::full({max_bucket}, padding_position(), opts);
      g.slots = torch::full({max_bucket}, scratch_slot_, opts);
      g.pool = at::cuda::graph_pool_handle();
    }
    // Real rows first; padding rows decode token 0 at padding_position() of the scratch slot.
    g.tokens.narrow(0, 0, B).copy_(tokens);
    g.positions.narrow(0, 0, B).copy_(positions);
    g.slots.narrow(0, 0, B).copy_(slots);
    if (bucket > B) {
      g.tokens.narrow(0, B, bucket - B).zero_();
      g.positions.narrow(0, B, bucket - B).fill_(padding_position());
      g.slots.narrow(0, B, bucket - B).fill_(scratch_slot_);
    }
    auto it = g.by_bucket.find(bucket);
    if (it == g.by_bucket.end()) {
      auto in_t = g.tokens.narrow(0, 0, bucket), in_p = g.positions.narrow(0, 0, bucket), in_s = g.slots.narrow(0, 0, bucket);
      // Warm up on a side stream (lazy initializations must not happen inside the capture), then capture.
      auto side = c10::cuda::getStreamFromPool(false, device_.index());
      c10::cuda::getCurrentCUDAStream(device_.index()).synchronize();  // once per bucket: a plain sync will do
      Graphs::Captured cap;
      {
        c10::cuda::CUDAStreamGuard guard(side);
        decode_eager(in_t, in_p, in_s);
        side.synchronize();
        cap.graph = std::make_unique<at::cuda::CUDAGraph>();
        cap.graph->capture_begin(g.pool);
        cap.logits = decode_eager(in_t, in_p, in_s);
        cap.graph->capture_end();
      }
      side.synchronize();
      it = g.by_bucket.emplace(bucket, std::move(cap)).first;
    }
    it->second.graph->replay();
    // A view of the graph's output: valid until the next decode() (the engine samples from it first).
    return it->second.logits.narrow(0, 0, B);
  }
#endif
  return decode_eager(tokens, positions, slots);
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
