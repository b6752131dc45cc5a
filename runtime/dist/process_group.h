// Process groups through c10d: Gloo on CPU, NCCL on GPUs, with torchrun-style env:// rendezvous
// (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT; SLURM_* as a fallback), so
// `torchrun --no-python`, `srun` and `mathrl launch` all start the same program.
#pragma once
#include <chrono>
#include <memory>
#include <string>
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

 private:
  struct Impl;
  explicit ProcessGroup(const Rendezvous& rv);
  Rendezvous rv_;
  std::string backend_name_ = "none";
  std::unique_ptr<Impl> impl_;
};

}  // namespace mathrl::dist
