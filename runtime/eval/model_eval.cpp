#include "eval/model_eval.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "common/error.h"
#include "common/jsonl.h"
#include "common/log.h"
#include "common/strings.h"
#include "reward/answer_extract.h"
#include "reward/math_equiv.h"
#include "sampler/engine.h"
#include "sampler/model_backend.h"
#include "tokenizer/tokenizer.h"

namespace mathrl::eval {

namespace {

bool is_math_style(const std::string& benchmark) {
  return benchmark == "math" || benchmark == "math500" || benchmark == "minerva_math" || benchmark == "ocw";
}

std::string join(const std::vector<std::string>& items, const char* sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
  return out;
}

const char* style_name(PromptStyle s) { return s == PromptStyle::FewShot ? "fewshot" : "zeroshot"; }

// Every stop string the engine gets for a benchmark: the format's own, then the caller's.
std::vector<std::string> stops_for(const std::string& benchmark, const ModelEvalOptions& o) {
  std::vector<std::string> stops = o.prompt ? std::vector<std::string>{} : default_stops(benchmark, o.style);
  for (const auto& s : o.stop)
    if (std::find(stops.begin(), stops.end(), s) == stops.end()) stops.push_back(s);
  return stops;
}

// Refuses to resume into a directory whose generations came from other settings.
void check_or_write_settings(const ModelEvalOptions& options) {
  std::filesystem::create_directories(options.out_dir);
  std::string path = options.out_dir + "/eval_settings.json", want = settings_json(options);
  if (std::filesystem::exists(path)) {
    std::string have(trim(read_file(path)));
    if (have != want)
      throw UsageError(str("--out ", options.out_dir, " holds an evaluation made with other settings:\n  there: ", have,
                           "\n  now:   ", want, "\nuse another --out, or delete it to start over"));
    return;
  }
  write_file_atomic(path, want + "\n");
}

// Samples completions with the engine; request i is problem problems[i], seeded by its index.
class ModelGenerator {
 public:
  ModelGenerator(model::Decoder& model, const Tokenizer& tok, const ModelEvalOptions& o)
      : tok_(tok), options_(o), config_(model->config()) {
    auto params = model->parameters();
    MATHRL_CHECK(!params.empty(), "the model has no parameters");
    device_ = params.front().device();
    dtype_ = params.front().scalar_type();
    backend_ = std::make_unique<sampler::ModelBackend>(model, device_, dtype_);
    if (config_.eos_token_id >= 0) eos_.push_back(static_cast<int32_t>(config_.eos_token_id));
    if (tok.eos_id() >= 0 && tok.eos_id() != config_.eos_token_id) eos_.push_back(tok.eos_id());
    if (o.samples == 1) {
      params_.greedy = true;
    } else {
      params_.temperature = o.temperature;
      params_.top_p = o.top_p;
    }
    params_.validate();
  }

  void begin(const std::string& benchmark, size_t todo) {
    benchmark_ = benchmark;
    stops_ = stops_for(benchmark, options_);
    stats_ = GenerationStats{};
    stats_.benchmark = benchmark;
    done_ = correct_ = graded_ = 0;
    if (options_.progress)
      progress_ = std::make_unique<Progress>(str("eval ", benchmark), static_cast<long long>(todo) * options_.samples, "seq");
  }

  void generate(const std::vector<std::string>& prompts, const std::vector<size_t>& problems, int n, const PromptDone& on_prompt) {
    std::vector<sampler::Request> requests(prompts.size());
    int64_t longest = 0;
    for (size_t i = 0; i < prompts.size(); ++i) {
      sampler::Request& r = requests[i];
      r.prompt_ids = tok_.encode(prompts[i], /*add_special=*/true);
      if (r.prompt_ids.empty()) throw DataError(str(benchmark_, " problem ", problems[i], ": the prompt has no tokens"));
      for (int32_t id : r.prompt_ids)
        if (id >= config_.vocab_size)
          throw DataError(str(benchmark_, " problem ", problems[i], ": the tokenizer gives id ", id,
                              ", outside the model's vocabulary [0, ", config_.vocab_size, ") (tokenizer and model do not match?)"));
      if (static_cast<int64_t>(r.prompt_ids.size()) >= config_.max_position_embeddings)
        throw DataError(str(benchmark_, " problem ", problems[i], ": the prompt has ", r.prompt_ids.size(),
                            " tokens and the model's context is ", config_.max_position_embeddings,
                            " (a zero-shot prompt or a shorter template would fit)"));
      r.n = n;
      r.params = params_;
      r.seed = sampler::mix_seed(options_.seed, problems[i]);
      r.max_new_tokens = options_.max_new_tokens;
      r.stop = stops_;
      longest = std::max<int64_t>(longest, static_cast<int64_t>(r.prompt_ids.size()) + options_.max_new_tokens);
    }
    longest = std::min<int64_t>(longest, config_.max_position_embeddings);
    sampler::EngineOptions eo;
    eo.tokenizer = &tok_;
    eo.eos_ids = eos_;
    const char* split = std::getenv("MATHRL_SPLIT_TIMING");  // profiling aid: one device sync per step
    eo.split_timing = split && std::string(split) == "1";
    eo.max_batch = sampler::slots_for_memory_budget(config_, dtype_, device_, longest, std::max<int64_t>(1, options_.batch));
    sampler::Engine engine(*backend_, eo);
    auto last_draw = std::chrono::steady_clock::now();
    auto start = last_draw;
    // A prompt is handed on (graded, written) as soon as its n samples are done.
    std::vector<std::vector<std::string>> texts(prompts.size(), std::vector<std::string>(static_cast<size_t>(n)));
    std::vector<int> left(prompts.size(), n);
    engine.generate(requests, [&](const sampler::Completion& c) {
      texts[c.request][static_cast<size_t>(c.sample)] = c.text;
      ++done_;
      ++stats_.completions;
      stats_.generated_tokens += static_cast<long long>(c.ids.size());
      if (--left[c.request] == 0) {
        on_prompt(c.request, texts[c.request]);
        std::vector<std::string>().swap(texts[c.request]);
      }
      if (!progress_) return;
      auto now = std::chrono::steady_clock::now();
      if (std::chrono::duration<double>(now - last_draw).count() < 0.25) return;
      last_draw = now;
      double secs = stats_.seconds + std::chrono::duration<double>(now - start).count();
      progress_->update(done_, suffix(secs));
    });
    stats_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    stats_.prompt_tokens += engine.stats().prompt_tokens;
    stats_.prefill_seconds += engine.stats().prefill_seconds;
    stats_.decode_seconds += engine.stats().decode_seconds;
    stats_.host_seconds += engine.stats().host_seconds;
    stats_.forward_seconds += engine.stats().forward_seconds;
    stats_.sample_seconds += engine.stats().sample_seconds;
  }

  void graded(const std::vector<SampledAnswer>& samples) {
    for (const auto& s : samples) correct_ += s.correct ? 1 : 0;
    graded_ += static_cast<long long>(samples.size());
  }

  GenerationStats end() {
    if (progress_) {
      progress_->finish(suffix(stats_.seconds));
      progress_.reset();
    }
    return stats_;
  }

 private:
  // "1234 tok/s, correct 41.2%": throughput and the running mean correctness of graded samples.
  std::string suffix(double seconds) const {
    char buf[96];
    std::snprintf(buf, sizeof buf, "%.0f tok/s", seconds > 0 ? stats_.generated_tokens / seconds : 0.0);
    std::string s = buf;
    if (graded_ > 0) {
      std::snprintf(buf, sizeof buf, ", correct %.1f%%", 100.0 * static_cast<double>(correct_) / static_cast<double>(graded_));
      s += buf;
    }
    return s;
  }

  const Tokenizer& tok_;
  const ModelEvalOptions& options_;
  model::ModelConfig config_;
  torch::Device device_{torch::kCPU};
  torch::ScalarType dtype_ = torch::kFloat32;
  std::unique_ptr<sampler::ModelBackend> backend_;
  std::vector<int32_t> eos_;
  sampler::SamplingParams params_;
  std::string benchmark_;
  std::vector<std::string> stops_;
  GenerationStats stats_;
  long long done_ = 0, correct_ = 0, graded_ = 0;  // completions generated / graded (this run)
  std::unique_ptr<Progress> progress_;
};

std::string stats_json(const GenerationStats& g) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "%.3f", g.seconds);
  std::string out = "{\"benchmark\":";
  append_json_string(out, g.benchmark);
  out += str(",\"completions\":", g.completions, ",\"prompt_tokens\":", g.prompt_tokens, ",\"generated_tokens\":",
             g.generated_tokens, ",\"seconds\":", buf);
  std::snprintf(buf, sizeof buf, ",\"prefill_seconds\":%.3f,\"decode_seconds\":%.3f", g.prefill_seconds, g.decode_seconds);
  out += buf;
  std::snprintf(buf, sizeof buf, ",\"host_seconds\":%.3f", g.host_seconds);
  out += buf;
  if (g.forward_seconds > 0) {
    std::snprintf(buf, sizeof buf, ",\"forward_seconds\":%.3f,\"sample_seconds\":%.3f", g.forward_seconds, g.sample_seconds);
    out += buf;
  }
  std::snprintf(buf, sizeof buf, "%.1f", g.seconds > 0 ? g.generated_tokens / g.seconds : 0.0);
  return out + str(",\"tokens_per_s\":", buf, "}");
}

void write_summaries(const ModelEvalOptions& options, const std::vector<EvalSummary>& summaries,
                     const std::vector<GenerationStats>& stats) {
  std::string json = "{\"settings\":" + settings_json(options) + ",\"results\":[";
  for (size_t i = 0; i < summaries.size(); ++i) json += (i ? "," : "") + summary_json(summaries[i]);
  json += "],\"generation\":[";
  for (size_t i = 0; i < stats.size(); ++i) json += (i ? "," : "") + stats_json(stats[i]);
  write_file_atomic(options.out_dir + "/summary.json", json + "]}\n");
  std::string md = summary_markdown(summaries);
  md += "\n| benchmark | completions generated now | tokens | seconds | tokens/s |\n|---|---|---|---|---|\n";
  for (const auto& g : stats) {
    char buf[128];
    std::snprintf(buf, sizeof buf, "%lld | %lld | %.1f | %.0f", g.completions, g.generated_tokens, g.seconds,
                  g.seconds > 0 ? g.generated_tokens / g.seconds : 0.0);
    md += str("| ", g.benchmark, " | ", buf, " |\n");
  }
  write_file_atomic(options.out_dir + "/summary.md", md);
}

}  // namespace

std::vector<std::string> default_stops(const std::string& benchmark, PromptStyle style) {
  if (style != PromptStyle::FewShot) return {};
  // The next exemplar's header; Minerva's closing sentence ends a MATH answer as well.
  if (is_math_style(benchmark)) return {"Problem:", "I hope it is correct."};
  return {"Question:"};
}

std::string settings_json(const ModelEvalOptions& o) {
  char buf[64];
  std::string out = "{";
  if (!o.model_label.empty()) {
    out += "\"model\":";
    append_json_string(out, o.model_label);
    out += ",";
  }
  out += str("\"style\":\"", o.prompt ? "custom" : style_name(o.style), "\",\"samples\":", o.samples);
  if (o.samples > 1) {
    std::snprintf(buf, sizeof buf, ",\"temperature\":%g,\"top_p\":%g", o.temperature, o.top_p);
    out += buf;
  }
  out += str(",\"max_new_tokens\":", o.max_new_tokens, ",\"seed\":", o.seed, ",\"stop\":[");
  for (size_t i = 0; i < o.stop.size(); ++i) {
    if (i) out += ",";
    append_json_string(out, o.stop[i]);
  }
  return out + "]}";
}

AnswerChecker grader_checker() {
  AnswerChecker c;
  c.extract = [](const std::string& completion) { return extract_answer(completion); };
  c.equal = [](const std::string& pred, const std::string& gold) { return math_equal(pred, gold); };
  return c;
}

void check_benchmarks(const ModelEvalOptions& options) {
  if (options.benchmarks.empty()) throw UsageError(str("no benchmark given; known: ", join(benchmark_names(), ", ")));
  if (!options.path.empty() && options.benchmarks.size() != 1)
    throw UsageError("a benchmark file path replaces one benchmark's file: name exactly one benchmark with it");
  if (options.samples < 1) throw UsageError(str("samples must be >= 1 (got ", options.samples, ")"));
  for (int k : options.ks)
    if (k < 1 || k > options.samples)
      throw UsageError(str("k=", k, " is outside 1..", options.samples, " (k cannot exceed the number of samples)"));
  if (options.max_new_tokens < 1) throw UsageError(str("max_new_tokens must be >= 1 (got ", options.max_new_tokens, ")"));
  const auto names = benchmark_names();
  for (const auto& b : options.benchmarks) {
    const BenchmarkInfo* info = nullptr;
    for (const auto& i : benchmarks())
      if (i.name == b) info = &i;
    if (!info)
      throw UsageError(str("unknown benchmark '", b, "'", did_you_mean(b, names), "; known: ", join(names, ", ")));
    std::string file = options.path.empty() ? options.data_dir + "/" + info->file : options.path;
    if (!std::filesystem::is_regular_file(file))
      throw UsageError(str("benchmark ", b, ": no file ", file,
                          options.path.empty() ? " (the data directory holds gsm8k/, math/, ...: see data/SOURCES.md)" : ""));
    if (load_benchmark(b, options.data_dir, options.path).empty()) throw DataError(str("benchmark ", b, ": ", file, " holds no problems"));
    if (options.style == PromptStyle::FewShot && !options.prompt) default_exemplars(b, options.data_dir);
  }
}

std::vector<EvalSummary> evaluate_model(model::Decoder& model, const Tokenizer& tokenizer, const ModelEvalOptions& options,
                                        std::vector<GenerationStats>* stats_out) {
  check_benchmarks(options);
  if (!options.out_dir.empty()) check_or_write_settings(options);
  ModelGenerator generator(model, tokenizer, options);
  const AnswerChecker checker = grader_checker();
  std::vector<EvalSummary> summaries;
  std::vector<GenerationStats> stats;
  torch::NoGradGuard no_grad;
  for (const auto& bench : options.benchmarks) {
    EvalOptions eo;
    eo.benchmark = bench;
    eo.data_dir = options.data_dir;
    eo.path = options.path;
    eo.style = options.style;
    eo.samples = options.samples;
    eo.ks = options.ks;
    eo.limit = options.limit;
    eo.prompt = options.prompt;
    eo.out_dir = options.out_dir;
    // Every problem in one engine call by default: slots never wait for a call's tail, and the
    // streaming writes keep each finished problem on disk anyway.
    eo.batch_problems = options.chunk_problems;
    eo.on_start = [&](size_t todo, size_t) { generator.begin(bench, todo); };
    eo.on_graded = [&](size_t, const std::vector<SampledAnswer>& samples) { generator.graded(samples); };
    IndexedGenerateFn generate = [&](const std::vector<std::string>& prompts, const std::vector<size_t>& problems, int n,
                                     const PromptDone& done) { generator.generate(prompts, problems, n, done); };
    summaries.push_back(run_eval(eo, generate, checker));
    stats.push_back(generator.end());
  }
  if (!options.out_dir.empty()) write_summaries(options, summaries, stats);
  if (stats_out) *stats_out = std::move(stats);
  return summaries;
}

}  // namespace mathrl::eval
