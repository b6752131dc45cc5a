// `mathrl bench NAME`: speed benchmarks. Each benchmark is one entry of the table below; add a
// new one by writing `int bench_x(const cli::Args&)` and a row (its options join the `bench`
// command's option list in commands.cpp).
//
// bench generate: random prompts through the engine on a checkpoint (--model) or a random-init
// LLaMA-style preset (--preset 0.5b|1.5b, Qwen2-like shapes), ignoring EOS so every sequence runs
// max_new_tokens. Reports tokens/s and the fraction of the memory-bandwidth roofline: the bytes a
// decode step must read (weights once + every live sequence's K/V) over the measured device copy
// bandwidth, compared with the measured decode time; roofline_fraction_shared counts each shared
// prompt's K/V once per step (what an engine that shares prefixes must read).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>

#include "cli/options.h"
#include "common/error.h"
#include "common/strings.h"
#include "model/checkpoint.h"
#include "sampler/engine.h"
#include "sampler/model_backend.h"
#include "sampler/sampler_cli.h"
#include "train/step_profiler.h"

namespace mathrl::sampler {
namespace {

using Clock = std::chrono::steady_clock;

void sync(const torch::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize(d.has_index() ? d.index() : -1);
}

// Device copy bandwidth in bytes/s (read + write counted), from a large tensor copy.
double copy_bandwidth(const torch::Device& device) {
  const int64_t bytes = device.is_cuda() ? (int64_t(1) << 30) : (int64_t(256) << 20);
  auto a = torch::empty({bytes}, torch::TensorOptions().dtype(torch::kUInt8).device(device)).fill_(1);
  auto b = torch::empty_like(a);
  b.copy_(a);
  sync(device);
  const int iters = device.is_cuda() ? 20 : 3;
  auto t0 = Clock::now();
  for (int i = 0; i < iters; ++i) b.copy_(a);
  sync(device);
  double s = std::chrono::duration<double>(Clock::now() - t0).count();
  return 2.0 * static_cast<double>(bytes) * iters / s;
}

model::ModelConfig preset(const std::string& name) {
  model::ModelConfig c;
  c.model_type = "llama";
  c.vocab_size = 151936;
  c.tie_word_embeddings = true;
  c.max_position_embeddings = 4096;
  c.rope_theta = 1000000.0;
  if (name == "0.5b") {
    c.hidden_size = 896, c.intermediate_size = 4864, c.num_hidden_layers = 24, c.num_attention_heads = 14,
    c.num_key_value_heads = 2;
  } else if (name == "1.5b") {
    c.hidden_size = 1536, c.intermediate_size = 8960, c.num_hidden_layers = 28, c.num_attention_heads = 12,
    c.num_key_value_heads = 2;
  } else if (name == "tiny") {  // for smoke tests on CPU
    c.vocab_size = 512, c.hidden_size = 64, c.intermediate_size = 128, c.num_hidden_layers = 2,
    c.num_attention_heads = 4, c.num_key_value_heads = 2;
  } else {
    throw UsageError(str("bad argument '--preset': unknown preset '", name, "'", did_you_mean(name, {"0.5b", "1.5b", "tiny"}),
                         " (expected 0.5b, 1.5b or tiny)"));
  }
  return c;
}

int bench_generate(const cli::Args& args) {
  const std::string dev_name = args.str_or("device", torch::cuda::is_available() ? "cuda" : "cpu");
  const auto device = parse_device(dev_name);
  const auto dtype = parse_dtype_option(args.str_or("dtype", ""), device);
  const int64_t prompts = args.integer("prompts"), n = args.integer("n"), prompt_len = args.integer("prompt-len"),
                max_new = args.integer("max-new-tokens");
  if (prompts < 1 || n < 1 || prompt_len < 1 || max_new < 1)
    throw UsageError("bench generate: --prompts, --n, --prompt-len and --max-new-tokens must be >= 1");
  const uint64_t seed = static_cast<uint64_t>(args.integer("seed"));

  std::string model_name;
  model::Decoder decoder{nullptr};
  if (args.has("model")) {
    model_name = args.str("model");
    decoder = model::load_decoder(model_name, dtype, device);
  } else {
    model_name = "random-" + args.str("preset");
    decoder = model::random_decoder(preset(args.str("preset")), seed, dtype, device);
  }
  const auto config = decoder->config();
  if (prompt_len + max_new > config.max_position_embeddings)
    throw UsageError(str("bench generate: prompt-len + max-new-tokens = ", prompt_len + max_new,
                         " exceeds the model's context ", config.max_position_embeddings));
  ModelBackend backend(decoder, device, dtype);

  // Workload: random prompt ids (fixed by --seed), sampling at temperature 1, EOS ignored.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto ids = torch::randint(0, config.vocab_size, {prompts, prompt_len}, gen, torch::kInt64).to(torch::kInt32).contiguous();
  std::vector<Request> requests(static_cast<size_t>(prompts));
  SamplingParams params = sampling_from_args(args);
  for (int64_t p = 0; p < prompts; ++p) {
    auto& r = requests[static_cast<size_t>(p)];
    r.prompt_ids.assign(ids[p].data_ptr<int32_t>(), ids[p].data_ptr<int32_t>() + prompt_len);
    r.n = static_cast<int>(n);
    r.params = params;
    r.seed = mix_seed(seed, static_cast<uint64_t>(p));
    r.max_new_tokens = static_cast<int>(max_new);
    r.ignore_eos = true;
  }
  EngineOptions opt;
  opt.split_timing = args.flag("split-timing");
  const int64_t wanted = args.has("max-batch") ? args.integer("max-batch") : prompts * n;
  opt.max_batch = slots_for_memory_budget(config, dtype, device, prompt_len + max_new, wanted, args.real("kv-fraction"));

  // Warm-up (kernels, allocator, cuBLAS handles) on a short run.
  {
    Engine warm(backend, opt);
    std::vector<Request> w(requests.begin(), requests.begin() + std::min<int64_t>(prompts, 2));
    for (auto& r : w) r.max_new_tokens = 4;
    warm.generate(w);
    sync(device);
  }
  const double bandwidth = copy_bandwidth(device);

  // MATHRL_PROFILE=DIR[:FIRST[:COUNT]] profiles decode steps FIRST.. of the measured run.
  auto profiler = train::StepProfiler::from_env();
  if (profiler) {
    opt.before_decode_step = [&](int64_t step) { profiler->before_step(step); };
    opt.after_decode_step = [&](int64_t step) { profiler->after_step(step); };
  }
  Engine engine(backend, opt);
  auto t0 = Clock::now();
  auto out = engine.generate(requests);
  sync(device);
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  const auto& st = engine.stats();

  // Roofline: every decode step reads the weights once (less the embedding table, of which only B
  // rows are read, unless it doubles as the LM head) and every live sequence's cached K/V.
  const double w_bytes = static_cast<double>(weight_bytes(config, dtype)) -
                         (config.tie_word_embeddings ? 0.0 : double(config.vocab_size * config.hidden_size * c10::elementSize(dtype)));
  const double kv_pos = static_cast<double>(kv_bytes_per_position(config, dtype));
  // KV: decode step t (1..len-1) of a sequence reads prompt + t cached positions. With shared
  // prefixes the samples of a prompt read one copy of it: counted once per step while its longest
  // sample runs (all of a prompt's samples run together here), so the bytes an engine must read.
  double kv_read = 0, kv_read_shared = 0;
  std::vector<double> longest(requests.size(), 0.0);
  for (const auto& c : out) {
    const double L = c.prompt_tokens, T = static_cast<double>(c.ids.size());
    if (T > 1) {
      kv_read += kv_pos * ((T - 1) * L + (T - 1) * T / 2.0);
      kv_read_shared += kv_pos * (T - 1) * T / 2.0;
    }
    longest[c.request] = std::max(longest[c.request], T);
  }
  for (size_t r = 0; r < requests.size(); ++r)
    if (longest[r] > 1) kv_read_shared += kv_pos * (longest[r] - 1) * static_cast<double>(requests[r].prompt_ids.size());
  const double weight_read = w_bytes * static_cast<double>(st.decode_steps);
  const double decode_bytes = weight_read + kv_read;
  const double roofline_seconds = decode_bytes / bandwidth;
  const double roofline_shared_seconds = (weight_read + kv_read_shared) / bandwidth;
  const double tokens_per_s = static_cast<double>(st.generated_tokens) / seconds;

  std::string json = str(
      "{\"benchmark\":\"generate\",\"engine\":\"mathrl\",\"model\":\"", model_name, "\",\"parameters\":", config.parameter_count(),
      ",\"device\":\"", device.str(), "\",\"dtype\":\"", model::dtype_name(dtype), "\",\"prompts\":", prompts, ",\"n\":", n,
      ",\"prompt_len\":", prompt_len, ",\"max_new_tokens\":", max_new, ",\"slots\":", opt.max_batch,
      ",\"generated_tokens\":", st.generated_tokens, ",\"seconds\":", seconds, ",\"tokens_per_s\":", tokens_per_s,
      ",\"prefills\":", st.prefills, ",\"prefix_copies\":", st.prefix_copies, ",\"prefill_seconds\":", st.prefill_seconds,
      ",\"host_seconds\":", st.host_seconds,
      ",\"decode_seconds\":", st.decode_seconds, ",\"decode_steps\":", st.decode_steps,
      ",\"forward_seconds\":", st.forward_seconds, ",\"sample_seconds\":", st.sample_seconds,
      ",\"copy_bandwidth_gbs\":", bandwidth / 1e9, ",\"decode_bytes\":", decode_bytes,
      ",\"roofline_decode_seconds\":", roofline_seconds, ",\"roofline_fraction\":", roofline_seconds / std::max(st.decode_seconds, 1e-9),
      ",\"prefix_shares\":", st.prefix_shares, ",\"decoded_rows\":", st.decoded_rows, ",\"sampled_rows\":", st.sampled_rows,
      ",\"forks\":", st.forks, ",\"decode_bytes_shared\":", weight_read + kv_read_shared,
      ",\"roofline_fraction_shared\":", roofline_shared_seconds / std::max(st.decode_seconds, 1e-9),
      "}\n");
  std::fputs(json.c_str(), stdout);
  if (args.has("out")) write_file_atomic(args.str("out"), json);
  return 0;
}

struct Benchmark {
  const char* name;
  const char* summary;
  int (*run)(const cli::Args&);
};

const std::vector<Benchmark>& benchmarks() {
  static const std::vector<Benchmark> table = {
      {"generate", "rollout engine throughput and memory-bandwidth roofline fraction", bench_generate},
  };
  return table;
}

}  // namespace

int run_bench(const cli::Args& args) {
  const std::string name = args.positional().at(0);
  std::vector<std::string> names;
  for (const auto& b : benchmarks()) {
    if (name == b.name) return b.run(args);
    names.push_back(b.name);
  }
  std::string list;
  for (const auto& b : benchmarks()) list += str("\n  ", b.name, ": ", b.summary);
  throw UsageError(str("bad argument #1 to 'bench': unknown benchmark '", name, "'", did_you_mean(name, names),
                       "; available:", list));
}

}  // namespace mathrl::sampler
