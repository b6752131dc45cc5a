// Process groups through c10d: Gloo on CPU, NCCL on GPUs, with torchrun-style env:// rendezvous
// (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT; SLURM_* as a fallback), so
// `torchrun --no-python`, `srun` and `mathrl launch` all start the same program.
#pragma once
#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

namespace mathrl::dist {

struct Rendezvous {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string source = "single";  // "env", "slurm" or "single"
};

// Reads the rendezvous from the environment. Throws UsageError when it is inconsistent
// (rank outside [0, world_size), a missing MASTER_ADDR with world_size > 1, ...).
Rendezvous rendezvous_from_env();

enum class Backend { Auto, Gloo, Nccl };

class ProcessGroup;

// A collective in flight (the *_async calls). wait() blocks until it is done and throws as the
// blocking calls do; a default-constructed Work is already done. The group must outlive it.
class Work {
 public:
  struct Impl;  // defined in process_group.cpp
  Work() = default;
  explicit Work(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  void wait();
  bool done() const { return !impl_; }

 private:
  std::shared_ptr<Impl> impl_;
};
Backend parse_backend(const std::string& name);  // "auto" | "gloo" | "nccl"

// One process group for the job. With world_size 1 every collective is a no-op, so stages call
// them unconditionally.
class ProcessGroup {
 public:
  // Joins the group described by `rv`. Auto picks NCCL when CUDA is available, else Gloo.
  // `timeout` bounds every collective: a rank that dies or hangs ends the job with an error.
  static std::shared_ptr<ProcessGroup> create(const Rendezvous& rv, Backend backend = Backend::Auto,
                                              std::chrono::milliseconds timeout = std::chrono::minutes(10));
  ~ProcessGroup();

  int rank() const { return rv_.rank; }
  int world_size() const { return rv_.world_size; }
  int local_rank() const { return rv_.local_rank; }
  bool is_main() const { return rv_.rank == 0; }
  const std::string& backend_name() const { return backend_name_; }

  void all_reduce_sum(at::Tensor& tensor);
  void all_reduce_max(at::Tensor& tensor);
  void broadcast(at::Tensor& tensor, int root = 0);
  // Gathers equally shaped tensors from every rank, in rank order.
  std::vector<at::Tensor> all_gather(const at::Tensor& tensor);
  void barrier();

  // Asynchronous and flat-buffer collectives (gradient buckets, sharded optimizers). Tensors must be
  // contiguous and stay alive until the Work is waited for.
  Work all_reduce_sum_async(at::Tensor& tensor);
  void reduce_sum(at::Tensor& tensor, int root);  // the sum lands on `root`; others' tensors are unspecified
  Work reduce_sum_async(at::Tensor& tensor, int root);
  Work broadcast_async(at::Tensor& tensor, int root);
  // output [world * n] receives every rank's input [n], in rank order.
  void all_gather_flat(at::Tensor& output, const at::Tensor& input);
  // input [world * n] is summed across ranks; rank r's output [n] receives chunk r of the sum.
  void reduce_scatter_sum(at::Tensor& output, const at::Tensor& input);

  // After a collective failed: which ranks did not reach the failure check within a few seconds
  // (they died or hung), as a sentence for the error message. Used by Work::wait and the blocking calls.
  std::string diagnose_failure() const;

 private:
  struct Impl;
  explicit ProcessGroup(const Rendezvous& rv);
  Rendezvous rv_;
  std::string backend_name_ = "none";
  std::unique_ptr<Impl> impl_;
};

}  // namespace mathrl::dist
