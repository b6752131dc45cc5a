// `mathrl generate`: JSONL prompts in, one JSONL line per completion out.
#include <cstdio>
#include <filesystem>

#include <rapidjson/document.h>

#include "cli/options.h"
#include "common/error.h"
#include "common/jsonl.h"
#include "common/strings.h"
#include "model/checkpoint.h"
#include "sampler/engine.h"
#include "sampler/model_backend.h"
#include "sampler/sampler_cli.h"
#include "tokenizer/tokenizer.h"

namespace mathrl::sampler {

torch::Device parse_device(const std::string& name) {
  try {
    torch::Device d(name);
    if (d.is_cuda() && !torch::cuda::is_available()) throw UsageError(str("--device ", name, ": CUDA is not available"));
    if (!d.is_cpu() && !d.is_cuda()) throw UsageError(str("--device ", name, ": expected cpu, cuda or cuda:N"));
    return d;
  } catch (const c10::Error&) {
    throw UsageError(str("--device '", name, "': expected cpu, cuda or cuda:N"));
  }
}

torch::ScalarType parse_dtype_option(const std::string& name, const torch::Device& device) {
  if (name.empty()) return device.is_cuda() ? torch::kBFloat16 : torch::kFloat32;
  try {
    return model::parse_dtype(name);
  } catch (const std::exception& e) {
    throw UsageError(str("--dtype '", name, "': expected float32, bfloat16 or float16"));
  }
}

SamplingParams sampling_from_args(const cli::Args& args) {
  SamplingParams p;
  p.greedy = args.flag("greedy");
  p.temperature = args.real("temperature");
  p.top_k = args.integer("top-k");
  p.top_p = args.real("top-p");
  p.min_p = args.real("min-p");
  p.validate();
  return p;
}

namespace {

void append_completion(std::string& out, const Completion& c) {
  out += str("{\"prompt_index\":", c.request, ",\"sample_index\":", c.sample, ",\"text\":");
  append_json_string(out, c.text);
  out += ",\"ids\":[";
  for (size_t k = 0; k < c.ids.size(); ++k) {
    if (k) out += ',';
    out += std::to_string(c.ids[k]);
  }
  out += "],\"logprobs\":[";
  char buf[32];
  for (size_t k = 0; k < c.logprobs.size(); ++k) {
    if (k) out += ',';
    std::snprintf(buf, sizeof buf, "%.7g", static_cast<double>(c.logprobs[k]));
    out += buf;
  }
  out += str("],\"finish_reason\":\"", c.finish_reason, "\",\"prompt_tokens\":", c.prompt_tokens,
             ",\"completion_tokens\":", c.ids.size(), "}\n");
}

}  // namespace

int run_generate(const cli::Args& args) {
  const std::string model_dir = args.str("model");
  const std::string input = args.positional().empty() ? "-" : args.positional()[0];
  const auto device = parse_device(args.str("device"));
  const auto dtype = parse_dtype_option(args.str_or("dtype", ""), device);
  const SamplingParams params = sampling_from_args(args);
  const long long n = args.integer("n"), max_new = args.integer("max-new-tokens"), max_batch = args.integer("max-batch");
  if (n < 1) throw UsageError(str("--n must be >= 1 (got ", n, ")"));
  if (max_new < 1) throw UsageError(str("--max-new-tokens must be >= 1 (got ", max_new, ")"));
  if (max_batch < 1) throw UsageError(str("--max-batch must be >= 1 (got ", max_batch, ")"));
  std::vector<std::string> stop = args.list("stop");
  for (const auto& s : stop)
    if (s.empty()) throw UsageError("--stop: empty stop string");

  // The tokenizer is needed for "prompt" lines and stop strings; id-only inputs work without one.
  const bool tokenizer_given = args.has("tokenizer");
  const std::string tok_path = args.str_or("tokenizer", model_dir);
  std::unique_ptr<Tokenizer> tok;
  try {
    tok = load_tokenizer(tok_path);
  } catch (const UsageError&) {
    if (tokenizer_given) throw;
  }
  if (!stop.empty() && !tok) throw UsageError(str("--stop needs a tokenizer and none was found in ", tok_path, " (use --tokenizer)"));

  if (!std::filesystem::exists(model_dir + "/config.json"))
    throw UsageError(str("--model ", model_dir, ": no config.json there (expected a Hugging Face checkpoint directory)"));
  auto config = model::load_config(model_dir + "/config.json");
  // Read and check every prompt before loading weights, so bad input fails fast, naming its line.
  std::vector<Request> requests;
  LineReader in(input);
  std::string line;
  while (in.next(line)) {
    if (trim(line).empty()) continue;
    std::string where = str(in.name(), ":", in.line_number());
    rapidjson::Document doc = parse_json(line, where);
    if (!doc.IsObject()) throw DataError(str(where, ": expected a JSON object with \"prompt\" or \"ids\""));
    Request r;
    auto p = doc.FindMember("prompt");
    auto i = doc.FindMember("ids");
    if (p != doc.MemberEnd()) {
      if (!p->value.IsString()) throw DataError(str(where, ": 'prompt' must be a string"));
      std::string text(p->value.GetString(), p->value.GetStringLength());
      if (!is_valid_utf8(text)) throw DataError(str(where, ": 'prompt' is not valid UTF-8"));
      if (text.empty()) throw DataError(str(where, ": 'prompt' is empty"));
      if (!tok) throw UsageError(str(where, ": a text prompt needs a tokenizer; none was found in ", tok_path, " (use --tokenizer)"));
      r.prompt_ids = tok->encode(text, /*add_special=*/true);  // BOS etc. as the tokenizer's post-processor adds
      for (int32_t id : r.prompt_ids)
        if (id >= config.vocab_size)
          throw DataError(str(where, ": the tokenizer gives id ", id, ", outside the model's vocabulary [0, ",
                              config.vocab_size, ") (tokenizer and model do not match?)"));
    } else if (i != doc.MemberEnd()) {
      if (!i->value.IsArray()) throw DataError(str(where, ": 'ids' must be an array of integers"));
      for (const auto& v : i->value.GetArray()) {
        if (!v.IsInt64()) throw DataError(str(where, ": 'ids' holds a non-integer value"));
        int64_t id = v.GetInt64();
        if (id < 0 || id >= config.vocab_size)
          throw DataError(str(where, ": id ", id, " is outside the model's vocabulary [0, ", config.vocab_size, ")"));
        r.prompt_ids.push_back(static_cast<int32_t>(id));
      }
    } else {
      throw DataError(str(where, ": expected a field \"prompt\" (text) or \"ids\" (token ids)"));
    }
    if (r.prompt_ids.empty()) throw DataError(str(where, ": the prompt has no tokens"));
    if (static_cast<int64_t>(r.prompt_ids.size()) >= config.max_position_embeddings)
      throw DataError(str(where, ": the prompt has ", r.prompt_ids.size(), " tokens; the model's context is ",
                          config.max_position_embeddings, " and must leave room for a new token"));
    r.n = static_cast<int>(n);
    r.params = params;
    r.seed = mix_seed(static_cast<uint64_t>(args.integer("seed")), requests.size());
    r.max_new_tokens = static_cast<int>(max_new);
    r.stop = stop;
    r.ignore_eos = args.flag("ignore-eos");
    requests.push_back(std::move(r));
  }

  EngineOptions opt;
  opt.tokenizer = tok.get();
  if (config.eos_token_id >= 0) opt.eos_ids.push_back(static_cast<int32_t>(config.eos_token_id));
  if (tok && tok->eos_id() >= 0 && tok->eos_id() != config.eos_token_id) opt.eos_ids.push_back(tok->eos_id());
  int64_t longest = 0;
  for (const auto& r : requests) longest = std::max<int64_t>(longest, static_cast<int64_t>(r.prompt_ids.size()) + max_new);
  longest = std::min<int64_t>(longest, config.max_position_embeddings);
  // Weights first, so the KV-cache budget is taken from the memory they leave free.
  ModelBackend backend(model::load_decoder(model_dir, dtype, device), device, dtype);
  opt.max_batch = slots_for_memory_budget(config, dtype, device, longest, max_batch);
  Engine engine(backend, opt);
  auto completions = engine.generate(requests);

  std::string out;
  for (const auto& c : completions) append_completion(out, c);
  if (!out.empty() && std::fwrite(out.data(), 1, out.size(), stdout) != out.size()) throw Error("generate: write to stdout failed");
  std::fflush(stdout);
  return 0;
}

}  // namespace mathrl::sampler
