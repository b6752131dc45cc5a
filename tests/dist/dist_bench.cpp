// Data-parallel training throughput and memory on GPUs (scripts/bench_dp.sh runs it under
// `mathrl launch`, 1 and 2 ranks). A random-init LLaMA-style decoder in bf16 with fp32 masters,
// next-token loss through the chunked token log-prob kernel, and one of:
//   ddp   : DataParallel (buckets overlapped with backward) + train::AdamW
//   zero1 : DataParallel all-reduce + ShardedAdamW stage 1 (optimizer state sharded)
//   zero2 : DataParallel reduce-to-owner + ShardedAdamW stage 2 (gradients sharded too)
// Rank 0 prints one JSON line: tokens/s (all ranks), per-GPU tokens/s, step time and every rank's
// peak allocated memory.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#if __has_include(<c10/cuda/CUDACachingAllocator.h>)
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#define DIST_BENCH_CUDA_STATS 1
#endif
#include <torch/torch.h>

#include "dist/data_parallel.h"
#include "dist/process_group.h"
#include "dist/zero.h"
#include "model/transformer.h"
#include "token_logprobs.h"
#include "train/optimizer.h"

using namespace mathrl;

namespace {

struct Args {
  std::string mode = "ddp";
  int64_t hidden = 2048, inter = 5632, layers = 22, heads = 32, kv_heads = 4, vocab = 32000;  // ~1.1B
  int64_t seq = 2048, micro_batch = 4, accum = 1, steps = 8, warmup = 2;
  double bucket_mb = 25;
  bool overlap = true, checkpointing = false;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "dist_bench: %s needs a value\n", k.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (k == "--mode") a.mode = next();
    else if (k == "--hidden") a.hidden = std::stoll(next());
    else if (k == "--intermediate") a.inter = std::stoll(next());
    else if (k == "--layers") a.layers = std::stoll(next());
    else if (k == "--heads") a.heads = std::stoll(next());
    else if (k == "--kv-heads") a.kv_heads = std::stoll(next());
    else if (k == "--vocab") a.vocab = std::stoll(next());
    else if (k == "--seq") a.seq = std::stoll(next());
    else if (k == "--micro-batch") a.micro_batch = std::stoll(next());
    else if (k == "--accum") a.accum = std::stoll(next());
    else if (k == "--steps") a.steps = std::stoll(next());
    else if (k == "--warmup") a.warmup = std::stoll(next());
    else if (k == "--bucket-mb") a.bucket_mb = std::stod(next());
    else if (k == "--no-overlap") a.overlap = false;
    else if (k == "--checkpointing") a.checkpointing = true;
    else {
      std::fprintf(stderr, "dist_bench: unknown option %s\n", k.c_str());
      std::exit(2);
    }
  }
  if (a.mode != "ddp" && a.mode != "zero1" && a.mode != "zero2") {
    std::fprintf(stderr, "dist_bench: --mode must be ddp, zero1 or zero2\n");
    std::exit(2);
  }
  return a;
}

double peak_gib(at::Device device) {
#ifdef DIST_BENCH_CUDA_STATS
  if (device.is_cuda()) return static_cast<double>(c10::cuda::CUDACachingAllocator::getDeviceStats(device.index()).allocated_bytes[0].peak) / double(1ull << 30);
#endif
  (void)device;
  return 0;
}

void sync(at::Device device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

int run(const Args& a) {
  dist::Rendezvous rv = dist::rendezvous_from_env();
  const bool cuda = torch::cuda::is_available();
  const at::Device device = cuda ? at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(rv.local_rank)) : at::Device(at::kCPU);
#ifdef DIST_BENCH_CUDA_STATS
  if (cuda) c10::cuda::set_device(static_cast<c10::DeviceIndex>(rv.local_rank));
#endif
  auto group = dist::ProcessGroup::create(rv, dist::Backend::Auto);
  const int rank = group->rank(), world = group->world_size();

  model::ModelConfig c;
  c.vocab_size = a.vocab;
  c.hidden_size = a.hidden;
  c.intermediate_size = a.inter;
  c.num_hidden_layers = a.layers;
  c.num_attention_heads = a.heads;
  c.num_key_value_heads = a.kv_heads;
  c.max_position_embeddings = a.seq;
  model::Decoder m = model::random_decoder(c, 1, cuda ? at::kBFloat16 : at::kFloat, device);
  m->set_activation_checkpointing(a.checkpointing);
  std::vector<std::pair<std::string, at::Tensor>> named;
  for (const auto& item : m->named_parameters(true)) named.emplace_back(item.key(), item.value());
  int64_t params = 0;
  for (auto& [n, p] : named) params += p.numel();
#ifdef DIST_BENCH_CUDA_STATS
  if (cuda) c10::cuda::CUDACachingAllocator::resetPeakStats(device.index());
#endif

  train::AdamWOptions ao;
  std::unique_ptr<train::AdamW> plain;
  std::unique_ptr<dist::ShardedAdamW> sharded;
  dist::DataParallelOptions dpo;
  dpo.bucket_mb = a.bucket_mb;
  dpo.overlap = a.overlap;
  if (a.mode == "ddp") {
    plain = std::make_unique<train::AdamW>(named, ao);
  } else {
    dist::ZeroOptions zo;
    zo.stage = a.mode == "zero2" ? 2 : 1;
    zo.reduce_grads = false;  // the DataParallel below reduces, overlapped with backward
    sharded = std::make_unique<dist::ShardedAdamW>(group.get(), named, ao, zo);
    if (zo.stage == 2) dpo.owners = sharded->owners();
  }
  dist::DataParallel dp(group.get(), named, dpo);

  auto batch = [&](int64_t step, int64_t micro) {
    at::manual_seed(static_cast<uint64_t>(1000 * step + 10 * micro + rank));
    return at::randint(0, a.vocab, {a.micro_batch, a.seq}, at::TensorOptions().dtype(at::kLong)).to(device);
  };
  double timed_s = 0;
  int64_t timed_tokens = 0;
  double last_loss = 0;
  for (int64_t step = 0; step < a.warmup + a.steps; ++step) {
    sync(device);
    const auto t0 = std::chrono::steady_clock::now();
    at::Tensor loss_sum = at::zeros({}, at::TensorOptions().dtype(at::kFloat).device(device));
    for (int64_t micro = 0; micro < a.accum; ++micro) {
      at::Tensor ids = batch(step, micro);
      dp.set_sync(micro == a.accum - 1);
      at::Tensor h = m->hidden_states(ids.narrow(1, 0, a.seq - 1));
      at::Tensor flat = h.reshape({-1, h.size(-1)});
      at::Tensor targets = ids.narrow(1, 1, a.seq - 1).reshape({-1});
      at::Tensor loss = kernels::token_logprobs(flat, m->lm_head_weight(), targets).logprobs.mean().neg() /
                        static_cast<double>(a.accum);
      loss.backward();
      loss_sum += loss.detach();
    }
    dp.finish();
    last_loss = loss_sum.item<double>();
    if (plain) plain->step(1e-5, last_loss);
    else sharded->step(1e-5, last_loss);
    sync(device);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (step >= a.warmup) {
      timed_s += secs;
      timed_tokens += a.micro_batch * a.accum * a.seq;
    }
  }
  std::vector<at::Tensor> plist;
  for (auto& [n, p] : named) plist.push_back(p);
  const double divergence = dist::replica_divergence(*group, plist);  // 0: the ranks stayed in sync
  // Every rank's peak memory, gathered to rank 0.
  at::Tensor mine = at::full({1}, peak_gib(device), at::TensorOptions().dtype(at::kDouble).device(device));
  at::Tensor all = at::zeros({world}, mine.options());
  group->all_gather_flat(all, mine);
  all = all.cpu();
  if (rank == 0) {
    const double per_gpu = static_cast<double>(timed_tokens) / timed_s;
    std::string peaks;
    for (int r = 0; r < world; ++r) peaks += (r ? "," : "") + std::to_string(all[r].item<double>());
    std::printf("{\"mode\":\"%s\",\"world\":%d,\"backend\":\"%s\",\"params\":%lld,\"seq\":%lld,\"micro_batch\":%lld,"
                "\"accum\":%lld,\"overlap\":%s,\"checkpointing\":%s,\"step_s\":%.4f,\"tokens_per_s_per_gpu\":%.1f,"
                "\"tokens_per_s\":%.1f,\"loss\":%.4f,\"replica_divergence\":%.3g,\"peak_gib\":[%s]}\n",
                a.mode.c_str(), world, group->backend_name().c_str(), static_cast<long long>(params),
                static_cast<long long>(a.seq), static_cast<long long>(a.micro_batch), static_cast<long long>(a.accum),
                a.overlap ? "true" : "false", a.checkpointing ? "true" : "false", timed_s / static_cast<double>(a.steps),
                per_gpu, per_gpu * world, last_loss, divergence, peaks.c_str());
    std::fflush(stdout);
  }
  group->barrier();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dist_bench: %s\n", e.what());
    return 1;
  }
}
