// `mathrl eval --model DIR --bench NAME[,NAME...]`: options -> ModelEvalOptions, then the
// summary table on stdout (and the files under --out).
#include "eval/eval_cli.h"

#include <cstdio>
#include <filesystem>

#include "cli/options.h"
#include "common/error.h"
#include "common/strings.h"
#include "eval/model_eval.h"
#include "model/checkpoint.h"
#include "sampler/sampler_cli.h"
#include "tokenizer/tokenizer.h"

namespace mathrl::cli {

namespace {

std::vector<std::string> comma_list(const std::string& text) {
  std::vector<std::string> out;
  for (const auto& part : split(text, ','))
    if (!trim(part).empty()) out.emplace_back(trim(part));
  return out;
}

std::vector<int> parse_ks(const std::string& text) {
  std::vector<int> ks;
  for (const auto& item : comma_list(text)) {
    char* end = nullptr;
    long v = std::strtol(item.c_str(), &end, 10);
    if (*end != '\0' || v < 1 || v > 1 << 20) throw UsageError(str("--k: '", item, "' is not a positive integer"));
    ks.push_back(static_cast<int>(v));
  }
  return ks;
}

eval::PromptStyle parse_style(const std::string& style, bool instruct) {
  if (style == "auto") return instruct ? eval::PromptStyle::ZeroShot : eval::PromptStyle::FewShot;
  if (style == "fewshot") return eval::PromptStyle::FewShot;
  if (style == "zeroshot") return eval::PromptStyle::ZeroShot;
  throw UsageError(str("--style '", style, "': expected auto, fewshot or zeroshot",
                       did_you_mean(style, {"auto", "fewshot", "zeroshot"})));
}

}  // namespace

int run_eval(const Args& args) {
  const std::string model_dir = args.str("model");
  eval::ModelEvalOptions o;
  o.benchmarks = comma_list(args.str("bench"));
  o.data_dir = args.str("data-dir");
  o.path = args.str_or("path", "");
  o.samples = static_cast<int>(args.integer("samples"));
  if (args.integer("samples") < 1) throw UsageError(str("--samples must be >= 1 (got ", args.integer("samples"), ")"));
  o.temperature = args.real("temperature");
  o.top_p = args.real("top-p");
  if (args.has("k")) o.ks = parse_ks(args.str("k"));
  for (int k : o.ks)
    if (k > o.samples) throw UsageError(str("--k ", k, " is larger than --samples ", o.samples, " (pass@k and maj@k need k <= samples)"));
  o.style = parse_style(args.str("style"), args.flag("instruct"));
  o.max_new_tokens = static_cast<int>(args.integer("max-new-tokens"));
  if (o.max_new_tokens < 1) throw UsageError(str("--max-new-tokens must be >= 1 (got ", o.max_new_tokens, ")"));
  o.limit = static_cast<int>(args.integer("limit"));
  if (o.limit < 0) throw UsageError(str("--limit must be >= 0 (got ", o.limit, ")"));
  o.seed = static_cast<uint64_t>(args.integer("seed"));
  o.batch = args.integer("batch");
  if (o.batch < 1) throw UsageError(str("--batch must be >= 1 (got ", o.batch, ")"));
  o.chunk_problems = static_cast<int>(args.integer("chunk"));
  o.stop = args.list("stop");
  for (const auto& s : o.stop)
    if (s.empty()) throw UsageError("--stop: empty stop string");
  o.out_dir = args.str_or("out", "");
  o.progress = !args.flag("quiet");
  o.model_label = std::filesystem::weakly_canonical(model_dir).string();

  // Everything that can be wrong with the input fails here, before the weights are read.
  eval::check_benchmarks(o);
  if (!std::filesystem::exists(model_dir + "/config.json"))
    throw UsageError(str("--model ", model_dir, ": no config.json there (expected a Hugging Face checkpoint directory)"));
  auto tokenizer = load_tokenizer(args.str_or("tokenizer", model_dir));
  const auto device = sampler::parse_device(args.str_or("device", torch::cuda::is_available() ? "cuda" : "cpu"));
  const auto dtype = sampler::parse_dtype_option(args.str_or("dtype", ""), device);
  if (o.samples > 1) {
    sampler::SamplingParams p;
    p.temperature = o.temperature;
    p.top_p = o.top_p;
    p.validate();
  }
  model::Decoder decoder = model::load_decoder(model_dir, dtype, device);
  decoder->eval();

  auto summaries = eval::evaluate_model(decoder, *tokenizer, o);
  std::string table = eval::summary_markdown(summaries);
  std::fwrite(table.data(), 1, table.size(), stdout);
  if (!o.out_dir.empty()) std::fprintf(stdout, "\nwritten: %s/{summary.json,summary.md,<bench>.generations.jsonl}\n", o.out_dir.c_str());
  std::fflush(stdout);
  return 0;
}

}  // namespace mathrl::cli
