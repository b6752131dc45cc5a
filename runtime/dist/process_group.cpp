// The c10d headers compile their Gloo/NCCL parts only when these are defined (set here, not on the
// command line, so the shared torch PCH stays valid for this file).
#define USE_C10D_GLOO
#ifdef MATHRL_DIST_NCCL
#define USE_C10D_NCCL
#endif
#include "dist/process_group.h"

#include <cstdlib>
#include <thread>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef MATHRL_DIST_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <torch/cuda.h>

#include "common/error.h"
#include "common/strings.h"

namespace mathrl::dist {

namespace {

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

int env_int(const char* name, int fallback) {
  const char* v = env(name);
  if (!v) return fallback;
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  if (*end != '\0' || x < 0 || x > 1 << 24) throw UsageError(str("environment variable ", name, "='", v, "' is not a count"));
  return static_cast<int>(x);
}

}  // namespace

Rendezvous rendezvous_from_env() {
  Rendezvous rv;
  if (env("WORLD_SIZE") || env("RANK")) {
    rv.source = "env";
    rv.world_size = env_int("WORLD_SIZE", 1);
    rv.rank = env_int("RANK", 0);
    rv.local_rank = env_int("LOCAL_RANK", rv.rank);
  } else if (env("SLURM_NTASKS") && env("SLURM_PROCID")) {
    rv.source = "slurm";
    rv.world_size = env_int("SLURM_NTASKS", 1);
    rv.rank = env_int("SLURM_PROCID", 0);
    rv.local_rank = env_int("SLURM_LOCALID", 0);
  }
  if (rv.world_size < 1) throw UsageError("WORLD_SIZE must be at least 1");
  if (rv.rank >= rv.world_size)
    throw UsageError(str("RANK ", rv.rank, " is outside WORLD_SIZE ", rv.world_size));
  if (const char* addr = env("MASTER_ADDR")) rv.master_addr = addr;
  else if (rv.world_size > 1 && rv.source == "env")
    throw UsageError("MASTER_ADDR is not set (needed with WORLD_SIZE > 1; torchrun and mathrl launch set it)");
  rv.master_port = env_int("MASTER_PORT", rv.master_port);
  return rv;
}

Backend parse_backend(const std::string& name) {
  if (name == "auto") return Backend::Auto;
  if (name == "gloo") return Backend::Gloo;
  if (name == "nccl") return Backend::Nccl;
  throw UsageError(str("unknown distributed backend '", name, "' (expected auto, gloo or nccl)",
                       did_you_mean(name, {"auto", "gloo", "nccl"})));
}

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
};

ProcessGroup::ProcessGroup(const Rendezvous& rv) : rv_(rv), impl_(std::make_unique<Impl>()) {}
ProcessGroup::~ProcessGroup() = default;

std::shared_ptr<ProcessGroup> ProcessGroup::create(const Rendezvous& rv, Backend backend,
                                                   std::chrono::milliseconds timeout) {
  std::shared_ptr<ProcessGroup> pg(new ProcessGroup(rv));
  if (rv.world_size == 1) return pg;
  if (backend == Backend::Auto) backend = torch::cuda::is_available() ? Backend::Nccl : Backend::Gloo;
  c10d::TCPStoreOptions opts;
  opts.port = static_cast<uint16_t>(rv.master_port);
  opts.isServer = rv.rank == 0;
  opts.numWorkers = rv.world_size;
  opts.timeout = timeout;
  try {
    pg->impl_->store = c10::make_intrusive<c10d::TCPStore>(rv.master_addr, opts);
  } catch (const std::exception& e) {
    throw Error(str("rank ", rv.rank, ": cannot reach the rendezvous at ", rv.master_addr, ":", rv.master_port, ": ",
                    e.what()));
  }
  auto store = c10::make_intrusive<c10d::PrefixStore>("mathrl", pg->impl_->store);
  if (backend == Backend::Gloo) {
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    pg->impl_->backend = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rv.rank, rv.world_size, options);
    pg->backend_name_ = "gloo";
  } else {
#ifdef MATHRL_DIST_NCCL
    auto options = c10d::ProcessGroupNCCL::Options::create();
    options->timeout = timeout;
    pg->impl_->backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rv.rank, rv.world_size, options);
    pg->backend_name_ = "nccl";
#else
    throw UsageError("this build of mathrl has no NCCL backend (built without CUDA); use --backend gloo");
#endif
  }
  return pg;
}

namespace {
[[noreturn]] void collective_failed(const ProcessGroup& pg, const char* what, const std::exception& e) {
  throw Error(str("rank ", pg.rank(), ": ", what, " failed: ", pg.diagnose_failure(), " (", e.what(), ")"));
}

void wait(const c10::intrusive_ptr<c10d::Work>& work, const ProcessGroup& pg, const char* what) {
  try {
    work->wait();
  } catch (const std::exception& e) {
    collective_failed(pg, what, e);
  }
}

void all_reduce(c10d::Backend* backend, at::Tensor& tensor, c10d::ReduceOp::RedOpType op, const ProcessGroup& pg) {
  if (!backend) return;
  std::vector<at::Tensor> t{tensor};
  c10d::AllreduceOptions o;
  o.reduceOp = op;
  wait(backend->allreduce(t, o), pg, "all_reduce");
}
}  // namespace

struct Work::Impl {
  c10::intrusive_ptr<c10d::Work> work;
  const ProcessGroup* group = nullptr;
  const char* what = "";
};

void Work::wait() {
  if (!impl_) return;
  std::shared_ptr<Impl> impl = std::move(impl_);
  mathrl::dist::wait(impl->work, *impl->group, impl->what);
}

std::string ProcessGroup::diagnose_failure() const {
  if (!impl_->store) return "no process group";
  // Every rank that sees a collective fail checks in under its own key; the ranks that do not check
  // in within the window are the dead or hung ones. The store lives on rank 0: when it is gone, so
  // is rank 0.
  try {
    c10d::StoreTimeoutGuard guard(*impl_->store, std::chrono::seconds(2));
    impl_->store->set(str("mathrl-failed/", rv_.rank), std::string("1"));
    std::vector<int> missing;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    do {
      missing.clear();
      for (int r = 0; r < rv_.world_size; ++r)
        if (r != rv_.rank && !impl_->store->check({str("mathrl-failed/", r)})) missing.push_back(r);
      if (missing.empty()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    } while (std::chrono::steady_clock::now() < until);
    if (missing.empty()) return "every rank is alive (the ranks disagreed on the collective, or the network failed)";
    std::string names;
    for (size_t i = 0; i < missing.size(); ++i) names += str(i ? ", " : "", missing[i]);
    return str(missing.size() == 1 ? "rank " : "ranks ", names, missing.size() == 1 ? " is" : " are",
               " not responding (died or hung past the timeout)");
  } catch (const std::exception&) {
    return rv_.rank == 0 ? "the rendezvous store is unreachable"
                         : "rank 0 is not responding (its rendezvous store is unreachable: it died or hung)";
  }
}

void ProcessGroup::all_reduce_sum(at::Tensor& tensor) { all_reduce(impl_->backend.get(), tensor, c10d::ReduceOp::SUM, *this); }

void ProcessGroup::all_reduce_max(at::Tensor& tensor) { all_reduce(impl_->backend.get(), tensor, c10d::ReduceOp::MAX, *this); }

void ProcessGroup::broadcast(at::Tensor& tensor, int root) {
  if (!impl_->backend) return;
  std::vector<at::Tensor> t{tensor};
  c10d::BroadcastOptions o;
  o.rootRank = root;
  wait(impl_->backend->broadcast(t, o), *this, "broadcast");
}

std::vector<at::Tensor> ProcessGroup::all_gather(const at::Tensor& tensor) {
  if (!impl_->backend) return {tensor.clone()};
  std::vector<at::Tensor> out;
  for (int r = 0; r < world_size(); ++r) out.push_back(at::empty_like(tensor));
  std::vector<std::vector<at::Tensor>> outputs{out};
  std::vector<at::Tensor> inputs{tensor};
  wait(impl_->backend->allgather(outputs, inputs), *this, "all_gather");
  return outputs[0];
}

namespace {
Work make_work(c10::intrusive_ptr<c10d::Work> w, const ProcessGroup* pg, const char* what);
}

Work ProcessGroup::all_reduce_sum_async(at::Tensor& tensor) {
  if (!impl_->backend) return {};
  std::vector<at::Tensor> t{tensor};
  c10d::AllreduceOptions o;
  o.reduceOp = c10d::ReduceOp::SUM;
  return make_work(impl_->backend->allreduce(t, o), this, "all_reduce");
}

Work ProcessGroup::reduce_sum_async(at::Tensor& tensor, int root) {
  if (!impl_->backend) return {};
  std::vector<at::Tensor> t{tensor};
  c10d::ReduceOptions o;
  o.reduceOp = c10d::ReduceOp::SUM;
  o.rootRank = root;
  return make_work(impl_->backend->reduce(t, o), this, "reduce");
}

void ProcessGroup::reduce_sum(at::Tensor& tensor, int root) { reduce_sum_async(tensor, root).wait(); }

Work ProcessGroup::broadcast_async(at::Tensor& tensor, int root) {
  if (!impl_->backend) return {};
  std::vector<at::Tensor> t{tensor};
  c10d::BroadcastOptions o;
  o.rootRank = root;
  return make_work(impl_->backend->broadcast(t, o), this, "broadcast");
}

void ProcessGroup::all_gather_flat(at::Tensor& output, const at::Tensor& input) {
  MATHRL_CHECK(output.numel() == input.numel() * world_size(), "all_gather_flat: output must hold world_size inputs");
  if (!impl_->backend) {
    output.copy_(input.reshape(output.sizes()));
    return;
  }
  at::Tensor in = input;
  wait(impl_->backend->_allgather_base(output, in), *this, "all_gather");
}

void ProcessGroup::reduce_scatter_sum(at::Tensor& output, const at::Tensor& input) {
  MATHRL_CHECK(input.numel() == output.numel() * world_size(), "reduce_scatter_sum: input must hold world_size outputs");
  if (!impl_->backend) {
    output.copy_(input.reshape(output.sizes()));
    return;
  }
  at::Tensor in = input;
  c10d::ReduceScatterOptions o;
  o.reduceOp = c10d::ReduceOp::SUM;
  wait(impl_->backend->_reduce_scatter_base(output, in, o), *this, "reduce_scatter");
}

namespace {
Work make_work(c10::intrusive_ptr<c10d::Work> w, const ProcessGroup* pg, const char* what) {
  auto impl = std::make_shared<Work::Impl>();
  impl->work = std::move(w);
  impl->group = pg;
  impl->what = what;
  return Work(std::move(impl));
}
}  // namespace

void ProcessGroup::barrier() {
  if (!impl_->backend) return;
  // A tiny all-reduce works as a barrier on every backend and respects the timeout.
  at::Tensor t = at::zeros({1}, backend_name_ == "nccl" ? at::TensorOptions().device(at::kCUDA, rv_.local_rank)
                                                        : at::TensorOptions());
  all_reduce_sum(t);
}

}  // namespace mathrl::dist
