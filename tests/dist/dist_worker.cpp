// One rank of the data-parallel tests (tests/dist/dist_test.cpp starts it with RANK, WORLD_SIZE,
// MASTER_ADDR and MASTER_PORT). Every rank also computes the single-process reference on the
// whole global batch and prints how far its own data-parallel run is from it:
//   grad_maxdiff, loss_maxdiff, norm_maxdiff, param_maxdiff, ...
// The test asserts on those numbers. Scenarios: sync, hook, overlap, accum, zero1 (ShardedAdamW
// all-reduces), zero2 (an overlapped DataParallel reduces to owners), zero2sync (ShardedAdamW reduces
// to owners), zero3 / zero3bf16 (FullyShardedDecoder), nanguard, die, die0, hang.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include <torch/torch.h>

#include "dist/data_parallel.h"
#include "dist/fsdp.h"
#include "dist/process_group.h"
#include "dist/zero.h"
#include "model/transformer.h"
#include "train/optimizer.h"

using namespace mathrl;

namespace {

constexpr int64_t kRows = 8, kLen = 12, kVocab = 48, kGroup = 2, kSteps = 3;
constexpr double kLr = 1e-2, kClip = 0.05;

model::ModelConfig tiny() {
  model::ModelConfig c;
  c.vocab_size = kVocab;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.max_position_embeddings = 64;
  return c;
}

// DIST_DEVICE=cuda: every rank (and its reference) on cuda:LOCAL_RANK, over NCCL (the GPU machine).
at::Device g_device = at::kCPU;
at::ScalarType g_dtype = at::kFloat;  // zero3bf16: bfloat16 models (the reference too)

// The global batch of one step: the same on every rank, different per step.
at::Tensor global_batch(int64_t step) {
  std::mt19937_64 rng(1234 + static_cast<uint64_t>(step));
  std::vector<int64_t> ids(kRows * kLen);
  for (auto& x : ids) x = static_cast<int64_t>(rng() % kVocab);
  return at::tensor(ids, at::kLong).view({kRows, kLen}).to(g_device);
}

// Sum over rows and positions of -log p(next token).
at::Tensor nll_sum(model::Decoder& m, const at::Tensor& ids) {
  at::Tensor h = m->hidden_states(ids.narrow(1, 0, kLen - 1));
  at::Tensor lp = at::log_softmax(m->logits(h).to(at::kFloat), -1);
  return lp.gather(-1, ids.narrow(1, 1, kLen - 1).unsqueeze(-1)).sum().neg();
}

std::vector<std::pair<std::string, at::Tensor>> named(model::Decoder& m) { return dist::trainable_parameters(*m); }

train::AdamWOptions adam_options() {
  train::AdamWOptions o;
  o.clip = kClip;
  o.weight_decay = 0.1;
  o.fused = train::AdamWOptions::Fused::Off;
  o.nan_guard_limit = 3;
  return o;
}

struct Trace {
  std::vector<at::Tensor> first_grads;  // after the first step's backward (and reduction)
  std::vector<double> losses, norms;
  std::vector<at::Tensor> params;       // after the last step
  int64_t skipped = 0;
  double eval_loss = 0;                 // nll sum on the batch after the last step, without grad
};

// The single-process run on the whole batch. nan_step: the step whose loss is NaN (0 = none).
Trace reference(int nan_step) {
  model::Decoder m = model::random_decoder(tiny(), 11, g_dtype, g_device);
  train::AdamW opt(named(m), adam_options());
  Trace t;
  for (int64_t s = 1; s <= kSteps; ++s) {
    at::Tensor loss = nll_sum(m, global_batch(s)) / static_cast<double>(kRows * (kLen - 1));
    loss.backward();
    if (s == 1)
      for (auto& [n, p] : named(m)) t.first_grads.push_back(p.grad().clone());
    double l = s == nan_step ? std::nan("") : loss.item<double>();
    t.norms.push_back(opt.grad_norm());
    opt.step(kLr, l);
    t.losses.push_back(loss.item<double>());
  }
  for (auto& [n, p] : named(m)) t.params.push_back(p.detach().clone());
  t.skipped = opt.skipped();
  at::NoGradGuard no_grad;
  t.eval_loss = nll_sum(m, global_batch(kSteps + 1)).item<double>();
  return t;
}

double maxdiff(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b, const std::vector<bool>* only = nullptr) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (only && !(*only)[i]) continue;
    d = std::max(d, (a[i] - b[i]).abs().max().item<double>());
  }
  return d;
}

double maxdiff(const std::vector<double>& a, const std::vector<double>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(a[i] - b[i]));
  return d;
}

// ZeRO-3: the decoder's parameters sharded over the ranks (dist::FullyShardedDecoder), two
// micro-batches per step summed into the shards' gradients, AdamW on the shards with the global
// norm. Prints the usual differences from the reference plus the memory figures.
int run_zero3(dist::ProcessGroup& group, const Trace& ref) {
  const int rank = group.rank(), world = group.world_size();
  model::Decoder m = model::random_decoder(tiny(), 11 + static_cast<uint64_t>(rank), g_dtype, g_device);
  std::vector<at::Tensor> params;
  for (auto& [n, p] : named(m)) params.push_back(p);
  dist::broadcast_parameters(group, params, 0);
  dist::FullyShardedDecoder fsdp(&group, m, dist::Reduction::Sum);
  train::AdamWOptions o = adam_options();
  o.clip = 0;  // the global clip is step_with_global_norm's
  train::AdamW opt(fsdp.shards(), o);
  Trace t;
  auto [begin, end] = dist::shard_range(kRows, rank, world, kGroup);
  const double global_tokens = static_cast<double>(kRows * (kLen - 1));
  double resident = 0;
  for (int64_t s = 1; s <= kSteps; ++s) {
    at::Tensor mine = global_batch(s).narrow(0, begin, end - begin);
    const int64_t half = mine.size(0) / 2;
    at::Tensor loss_total = at::zeros({}, at::TensorOptions().dtype(at::kFloat).device(g_device));
    fsdp.begin_step();
    for (auto [from, n] : {std::pair<int64_t, int64_t>{0, half}, {half, mine.size(0) - half}}) {
      at::Tensor l = nll_sum(m, mine.narrow(0, from, n)) / global_tokens;
      l.backward();
      loss_total += l.detach();
    }
    fsdp.finish_step();
    group.all_reduce_sum(loss_total);
    train::StepResult r = dist::step_with_global_norm(group, opt, fsdp.shard_grads(), kClip, kLr, loss_total.item<double>());
    t.losses.push_back(loss_total.item<double>());
    t.norms.push_back(r.grad_norm);
    resident = std::max(resident, static_cast<double>(fsdp.resident_bytes()) / static_cast<double>(fsdp.full_bytes()));
  }
  fsdp.for_each_full([&](const std::string&, const at::Tensor& v) { t.params.push_back(v.clone()); });
  t.skipped = opt.skipped();
  double eval = 0;
  {
    at::NoGradGuard no_grad;
    fsdp.begin_step();
    eval = nll_sum(m, global_batch(kSteps + 1)).item<double>();
    fsdp.finish_step();
  }
  int64_t model_numel = 0;  // the module's own tensors between steps
  for (auto& p : params) model_numel += p.numel();
  std::printf("rank %d/%d scenario zero3\n", rank, world);
  std::printf("masters %d\n", opt.has_masters() ? 1 : 0);
  std::printf("loss_maxdiff %.3e\n", maxdiff(t.losses, ref.losses));
  std::printf("norm_maxdiff %.3e\n", maxdiff(t.norms, ref.norms));
  std::printf("param_maxdiff %.3e\n", maxdiff(t.params, ref.params));
  double diff_sq = 0, ref_sq = 0;  // relative L2 distance over all parameters
  for (size_t i = 0; i < t.params.size(); ++i) {
    diff_sq += (t.params[i].to(at::kDouble) - ref.params[i].to(at::kDouble)).pow(2).sum().item<double>();
    ref_sq += ref.params[i].to(at::kDouble).pow(2).sum().item<double>();
  }
  std::printf("param_reldiff %.3e\n", std::sqrt(diff_sq / ref_sq));
  std::printf("eval_diff %.3e\n", std::abs(eval - ref.eval_loss));
  std::printf("ref_first_norm %.6f\n", ref.norms[0]);
  std::printf("skipped %lld\n", static_cast<long long>(t.skipped));
  std::printf("resident_fraction %.6f\n", resident);
  std::printf("model_numel_between_steps %lld\n", static_cast<long long>(model_numel));
  std::printf("peak_gathered_over_bound %.6f\n",
              static_cast<double>(fsdp.peak_gathered_bytes()) /
                  static_cast<double>(fsdp.outer_bytes() + fsdp.largest_layer_bytes()));
  std::printf("peak_gathered_fraction %.6f\n",
              static_cast<double>(fsdp.peak_gathered_bytes()) / static_cast<double>(fsdp.full_bytes()));
  group.barrier();
  return 0;
}

int run(const std::string& scenario) {
  at::set_num_threads(1);
  dist::Rendezvous rv = dist::rendezvous_from_env();
  const auto timeout = std::chrono::milliseconds(std::atoi(std::getenv("DIST_TIMEOUT_MS") ? std::getenv("DIST_TIMEOUT_MS") : "20000"));
  const char* dev = std::getenv("DIST_DEVICE");
  const bool cuda = dev && std::string(dev) == "cuda";
  if (cuda) g_device = at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(rv.local_rank));
  auto group = dist::ProcessGroup::create(rv, cuda ? dist::Backend::Nccl : dist::Backend::Gloo, timeout);
  const int rank = group->rank(), world = group->world_size();

  if (scenario == "die" || scenario == "die0" || scenario == "hang") {
    group->barrier();
    if (rank == (scenario == "die0" ? 0 : 1)) {
      if (scenario != "hang") ::_exit(3);
      std::this_thread::sleep_for(std::chrono::seconds(60));
      return 0;
    }
    const auto t0 = std::chrono::steady_clock::now();
    try {
      at::Tensor x = at::ones({4}, at::TensorOptions().device(g_device));
      group->all_reduce_sum(x);
      std::printf("no error\n");
      return 0;
    } catch (const std::exception& e) {
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("seconds %.3f\nerror %s\n", secs, e.what());
      return 1;
    }
  }

  if (scenario == "collectives") {
    // Rank r contributes x_r[i] = 100 r + i; every expected value is computed by a plain loop.
    const int64_t n = 6;
    auto contribution = [&](int r) {
      std::vector<double> v(static_cast<size_t>(n * world));
      for (size_t i = 0; i < v.size(); ++i) v[i] = 100.0 * r + static_cast<double>(i);
      return v;
    };
    auto opts = at::TensorOptions().dtype(at::kDouble).device(g_device);
    int bad = 0;
    auto check = [&](const char* what, const at::Tensor& got, const std::vector<double>& want) {
      at::Tensor g = got.cpu().contiguous();
      bool ok = g.numel() == static_cast<int64_t>(want.size());
      for (int64_t i = 0; ok && i < g.numel(); ++i) ok = g.data_ptr<double>()[i] == want[static_cast<size_t>(i)];
      std::printf("%s_ok %d\n", what, ok ? 1 : 0);
      bad += ok ? 0 : 1;
    };
    std::vector<double> sum(static_cast<size_t>(n * world), 0.0);
    for (int r = 0; r < world; ++r)
      for (size_t i = 0; i < sum.size(); ++i) sum[i] += contribution(r)[i];
    // reduce_scatter_sum: rank r gets chunk r of the sum.
    at::Tensor in = at::tensor(contribution(rank), opts), out = at::zeros({n}, opts);
    group->reduce_scatter_sum(out, in);
    check("reduce_scatter", out, std::vector<double>(sum.begin() + rank * n, sum.begin() + (rank + 1) * n));
    // all_gather_flat: every rank's first n values, in rank order.
    at::Tensor all = at::zeros({n * world}, opts);
    group->all_gather_flat(all, in.narrow(0, 0, n));
    std::vector<double> gathered;
    for (int r = 0; r < world; ++r) {
      const std::vector<double> c = contribution(r);
      gathered.insert(gathered.end(), c.begin(), c.begin() + n);
    }
    check("all_gather_flat", all, gathered);
    // reduce_sum to the last rank; async all-reduce and broadcast.
    at::Tensor red = at::tensor(contribution(rank), opts);
    group->reduce_sum(red, world - 1);
    if (rank == world - 1) check("reduce", red, sum);
    at::Tensor ar = at::tensor(contribution(rank), opts);
    dist::Work w = group->all_reduce_sum_async(ar);
    w.wait();
    check("all_reduce_async", ar, sum);
    at::Tensor bc = at::tensor(contribution(rank), opts);
    group->broadcast_async(bc, 1).wait();
    check("broadcast_async", bc, contribution(1));
    group->barrier();
    return bad == 0 ? 0 : 1;
  }

  const bool nanguard = scenario == "nanguard";
  if (scenario == "zero3bf16") g_dtype = at::kBFloat16;
  const Trace ref = reference(nanguard ? 2 : 0);
  if (scenario == "zero3" || scenario == "zero3bf16") return run_zero3(*group, ref);

  model::Decoder m = model::random_decoder(tiny(), 11 + static_cast<uint64_t>(rank), at::kFloat, g_device);  // differs per rank...
  std::vector<at::Tensor> params;
  for (auto& [n, p] : named(m)) params.push_back(p);
  dist::broadcast_parameters(*group, params, 0);  // ...until rank 0's values are broadcast

  const bool zero = scenario == "zero1" || scenario == "zero2" || scenario == "zero2sync" || nanguard;
  std::unique_ptr<dist::ShardedAdamW> sharded;
  std::unique_ptr<train::AdamW> plain;
  dist::DataParallelOptions dpo;
  dpo.bucket_mb = 4.0 / 1024;  // 4 KB buckets: several per model
  dpo.overlap = scenario == "overlap" || scenario == "accum" || scenario == "zero2";
  dpo.reduction = scenario == "accum" ? dist::Reduction::Sum : dist::Reduction::Mean;
  if (zero) {
    dist::ZeroOptions zo;
    zo.stage = scenario == "zero2" || scenario == "zero2sync" ? 2 : 1;
    zo.reduce_grads = scenario != "zero2";  // zero2: the overlapped DataParallel reduces to owners
    sharded = std::make_unique<dist::ShardedAdamW>(group.get(), named(m), adam_options(), zo);
    if (scenario == "zero2") dpo.owners = sharded->owners();
  } else {
    plain = std::make_unique<train::AdamW>(named(m), adam_options());
  }
  // overlap: one more parameter, outside the model, that only rank 1 uses. Rank 0's hook for it
  // never fires, so rank 0 launches its bucket (and, in order, every later one) from finish()
  // while rank 1 launches them during backward: the collectives must still pair up.
  at::Tensor extra = at::zeros({5}, at::TensorOptions().dtype(at::kFloat).device(g_device)).requires_grad_();
  auto dp_params = named(m);
  if (scenario == "overlap") dp_params.emplace_back("extra", extra);
  dist::DataParallel dp(group.get(), dp_params, dpo);
  if (scenario == "hook") plain->set_grad_hook(dp.grad_hook());

  Trace t;
  std::vector<bool> owned(params.size(), true);
  if (sharded)
    for (size_t i = 0; i < params.size(); ++i) owned[i] = sharded->owners()[i] == rank;
  int64_t buckets_in_backward = 0;
  auto [begin, end] = dist::shard_range(kRows, rank, world, kGroup);
  const double global_tokens = static_cast<double>(kRows * (kLen - 1));
  for (int64_t s = 1; s <= kSteps; ++s) {
    at::Tensor mine = global_batch(s).narrow(0, begin, end - begin);
    at::Tensor loss_total = at::zeros({}, at::TensorOptions().dtype(at::kFloat).device(g_device));
    if (scenario == "accum") {
      // Two micro-steps; the loss is normalized by the global token count and the gradients summed.
      const int64_t half = mine.size(0) / 2;
      {
        auto guard = dp.no_sync();
        at::Tensor l = nll_sum(m, mine.narrow(0, 0, half)) / global_tokens;
        l.backward();
        loss_total += l.detach();
      }
      at::Tensor l = nll_sum(m, mine.narrow(0, half, mine.size(0) - half)) / global_tokens;
      l.backward();
      loss_total += l.detach();
    } else {
      at::Tensor l = nll_sum(m, mine) / static_cast<double>(mine.size(0) * (kLen - 1));
      if (scenario == "overlap" && rank == 1) l = l + extra.sum() * 1e-3;  // extra is 0: same value
      l.backward();
      loss_total += l.detach() / static_cast<double>(world);
    }
    if (scenario != "hook" && !(zero && scenario != "zero2")) dp.finish();
    if (dp.buckets_launched_in_backward() > buckets_in_backward) buckets_in_backward = dp.buckets_launched_in_backward();
    if (scenario == "overlap") {
      // The mean of rank 1's 1e-3 and rank 0's nothing.
      const bool ok = extra.grad().defined() && (extra.grad() - 5e-4).abs().max().item<double>() < 1e-9;
      std::printf("extra_grad_ok %d\n", ok ? 1 : 0);
      extra.mutable_grad() = at::Tensor();
    }
    if (s == 1) {
      for (size_t i = 0; i < params.size(); ++i) {
        const at::Tensor& g = params[i].grad();
        if (scenario == "zero2" && !owned[i] && g.defined()) {
          std::printf("error non-owned gradient kept: %zu\n", i);
          return 1;
        }
        t.first_grads.push_back(g.defined() ? g.clone() : at::zeros_like(params[i]));
      }
    }
    group->all_reduce_sum(loss_total);
    double loss = loss_total.item<double>();
    if (nanguard && s == 2 && rank == 1) loss = std::nan("");  // one rank's loss is bad: all must skip
    train::StepResult r = sharded ? sharded->step(kLr, loss) : plain->step(kLr, loss);
    t.losses.push_back(loss_total.item<double>());
    t.norms.push_back(r.grad_norm);
  }
  for (auto& p : params) t.params.push_back(p.detach().clone());
  t.skipped = sharded ? sharded->skipped() : plain->skipped();

  // Gradients are comparable where this rank holds them after the reduction.
  const bool grads_visible = !(zero && scenario != "zero2");
  std::printf("rank %d/%d scenario %s\n", rank, world, scenario.c_str());
  if (grads_visible) std::printf("grad_maxdiff %.3e\n", maxdiff(t.first_grads, ref.first_grads, &owned));
  std::printf("loss_maxdiff %.3e\n", maxdiff(t.losses, ref.losses));
  if (!nanguard) std::printf("norm_maxdiff %.3e\n", maxdiff(t.norms, ref.norms));
  std::printf("param_maxdiff %.3e\n", maxdiff(t.params, ref.params));
  std::printf("ref_first_norm %.6f\n", ref.norms[0]);
  std::printf("replica_divergence %.3e\n", dist::replica_divergence(*group, params));
  std::printf("skipped %lld ref_skipped %lld\n", static_cast<long long>(t.skipped), static_cast<long long>(ref.skipped));
  std::printf("buckets %lld launched_in_backward %lld\n", static_cast<long long>(dp.bucket_count()),
              static_cast<long long>(buckets_in_backward));
  if (sharded) std::printf("owned_numel %lld\n", static_cast<long long>(sharded->partition().numel[rank]));
  // Checkpoint of the sharded optimizer: one file that an unsharded AdamW loads.
  if (sharded && scenario == "zero1") {
    const char* out_dir = std::getenv("DIST_OUT_DIR");
    const std::string path = std::string(out_dir ? out_dir : "/tmp") + "/opt.safetensors";
    sharded->save(path);
    train::AdamW whole(named(m), adam_options());
    whole.load(path);
    std::printf("loaded_steps %lld\n", static_cast<long long>(whole.steps()));
  }
  group->barrier();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: dist_worker SCENARIO\n");
    return 2;
  }
  try {
    return run(argv[1]);
  } catch (const std::exception& e) {
    std::printf("error %s\n", e.what());
    std::fprintf(stderr, "dist_worker: %s\n", e.what());
    return 1;
  }
}
