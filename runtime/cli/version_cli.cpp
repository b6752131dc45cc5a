// `mathrl version`: our version, the LibTorch we were built against, and what CUDA can see.
#include <cstdio>

#include <torch/cuda.h>
#include <torch/version.h>

#include "cli/version_cli.h"
#include "common/version.h"

namespace mathrl::cli {

int run_version(const Args&) {
  std::printf("%s\nLibTorch %s\n", version_string().c_str(), TORCH_VERSION);
  if (torch::cuda::is_available()) std::printf("CUDA: %d device(s)\n", static_cast<int>(torch::cuda::device_count()));
  else std::printf("CUDA: not available (CPU only)\n");
  return 0;
}

}  // namespace mathrl::cli
