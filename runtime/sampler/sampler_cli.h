// Command-line entry points of the sampler area: `mathrl generate` (generate_cli.cpp) and
// `mathrl bench NAME` (bench_cli.cpp), plus the option parsing they share.
#pragma once
#include <string>

#include <torch/torch.h>

#include "sampler/sampling.h"

namespace mathrl::cli {
class Args;
}

namespace mathrl::sampler {

int run_generate(const cli::Args& args);
// `mathrl bench NAME`: NAME picks an entry of the benchmark table in bench_cli.cpp ("generate").
int run_bench(const cli::Args& args);

torch::Device parse_device(const std::string& name);  // cpu | cuda | cuda:N; UsageError otherwise
// "" = bfloat16 on CUDA, float32 on CPU.
torch::ScalarType parse_dtype_option(const std::string& name, const torch::Device& device);
// --greedy, --temperature, --top-k, --top-p, --min-p (validated).
SamplingParams sampling_from_args(const cli::Args& args);

}  // namespace mathrl::sampler
