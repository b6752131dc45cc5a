#include "eval/evaluator.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <set>

#include "common/error.h"
#include "common/jsonl.h"
#include "common/strings.h"

namespace mathrl::eval {

namespace {

struct Graded {
  std::vector<SampledAnswer> samples;
};

std::vector<int> default_ks(int samples) {
  std::vector<int> ks;
  for (int k = 1; k <= samples; k *= 2) ks.push_back(k);
  if (ks.back() != samples) ks.push_back(samples);
  return ks;
}

MetricSet metrics_of(const std::vector<const Graded*>& problems, const std::vector<int>& ks, const AnswerChecker& checker) {
  MetricSet m;
  m.problems = static_cast<int>(problems.size());
  if (problems.empty()) return m;
  std::vector<double> acc;
  std::map<int, std::vector<double>> pass, maj;
  for (const Graded* g : problems) {
    int n = static_cast<int>(g->samples.size()), c = 0;
    for (const auto& s : g->samples) c += s.correct ? 1 : 0;
    acc.push_back(static_cast<double>(c) / n);
    for (int k : ks) {
      if (k > n) continue;
      pass[k].push_back(pass_at_k(n, c, k));
      maj[k].push_back(majority_at_k(g->samples, k, checker.equal));
    }
  }
  // Scores lie in [0, 1]: the normal interval is clipped there. One sample per problem makes
  // accuracy a plain proportion, which gets the Wilson interval (sound near 0 and 1).
  auto clip = [](Interval i) {
    i.low = std::max(0.0, i.low);
    i.high = std::min(1.0, i.high);
    return i;
  };
  bool single = true;
  double correct = 0;
  for (const Graded* g : problems) {
    single = single && g->samples.size() == 1;
    correct += g->samples.size() == 1 && g->samples[0].correct ? 1 : 0;
  }
  m.accuracy = single ? wilson_interval(correct, m.problems) : clip(mean_interval(acc));
  for (auto& [k, v] : pass) m.pass_at[k] = k == 1 && single ? m.accuracy : clip(mean_interval(v));
  for (auto& [k, v] : maj) m.maj_at[k] = k == 1 && single ? m.accuracy : clip(mean_interval(v));
  return m;
}

// Reads completions of an earlier run: problem index -> graded samples (only complete problems).
std::map<size_t, Graded> read_previous(const std::string& path, int samples) {
  std::map<size_t, Graded> done;
  if (!std::filesystem::exists(path)) return done;
  LineReader reader(path);
  std::string line;
  std::map<size_t, std::map<int, SampledAnswer>> partial;
  while (reader.next(line)) {
    rapidjson::Document d;
    d.Parse(line.data(), line.size());
    if (d.HasParseError() || !d.IsObject()) continue;  // a line cut by the interruption
    if (!d.HasMember("problem") || !d.HasMember("sample") || !d.HasMember("correct")) continue;
    SampledAnswer a;
    a.correct = d["correct"].IsBool() && d["correct"].GetBool();
    if (d.HasMember("answer") && d["answer"].IsString()) a.answer = d["answer"].GetString();
    partial[d["problem"].GetUint64()][d["sample"].GetInt()] = a;
  }
  for (auto& [idx, by_sample] : partial) {
    if (static_cast<int>(by_sample.size()) != samples) continue;
    Graded g;
    for (auto& [j, a] : by_sample) g.samples.push_back(a);
    done[idx] = std::move(g);
  }
  return done;
}

void json_interval(std::string& out, const Interval& i) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "{\"mean\":%.6f,\"low\":%.6f,\"high\":%.6f}", i.mean, i.low, i.high);
  out += buf;
}

void json_metrics(std::string& out, const MetricSet& m) {
  out += str("{\"problems\":", m.problems, ",\"accuracy\":");
  json_interval(out, m.accuracy);
  for (const char* kind : {"pass", "maj"}) {
    out += str(",\"", kind, "_at\":{");
    bool first = true;
    for (const auto& [k, v] : std::string(kind) == "pass" ? m.pass_at : m.maj_at) {
      out += str(first ? "" : ",", "\"", k, "\":");
      json_interval(out, v);
      first = false;
    }
    out += "}";
  }
  out += "}";
}

}  // namespace

EvalSummary run_eval(const EvalOptions& options, const GenerateFn& generate, const AnswerChecker& checker) {
  IndexedGenerateFn streaming = [&generate](const std::vector<std::string>& prompts, const std::vector<size_t>&, int n,
                                            const PromptDone& done) {
    auto completions = generate(prompts, n);
    MATHRL_CHECK(completions.size() == prompts.size(), "generator returned ", completions.size(), " results for ",
                 prompts.size(), " prompts");
    for (size_t i = 0; i < completions.size(); ++i) done(i, completions[i]);
  };
  return run_eval(options, streaming, checker);
}

EvalSummary run_eval(const EvalOptions& options, const IndexedGenerateFn& generate, const AnswerChecker& checker) {
  if (options.samples < 1) throw UsageError("evaluation needs at least one sample per problem");
  std::vector<int> ks = options.ks.empty() ? default_ks(options.samples) : options.ks;
  for (int k : ks)
    if (k < 1 || k > options.samples)
      throw UsageError(str("k=", k, " is outside 1..", options.samples, " (the number of samples)"));
  std::vector<Problem> problems = load_benchmark(options.benchmark, options.data_dir, options.path);
  if (options.limit > 0 && static_cast<size_t>(options.limit) < problems.size()) problems.resize(static_cast<size_t>(options.limit));
  std::vector<Problem> exemplars;
  if (options.style == PromptStyle::FewShot && !options.prompt)
    exemplars = default_exemplars(options.benchmark, options.data_dir);

  std::string generations;
  std::map<size_t, Graded> graded;
  EvalSummary summary;
  summary.benchmark = options.benchmark;
  summary.samples = options.samples;
  std::unique_ptr<FILE, int (*)(FILE*)> out(nullptr, &std::fclose);
  if (!options.out_dir.empty()) {
    std::filesystem::create_directories(options.out_dir);
    generations = options.out_dir + "/" + options.benchmark + ".generations.jsonl";
    graded = read_previous(generations, options.samples);
    summary.resumed_problems = static_cast<int>(graded.size());
    // An interrupted write can leave a last line without its newline: end it, so the first new
    // record does not fuse with it (the cut line is skipped when read back).
    bool cut = false;
    if (FILE* in = std::fopen(generations.c_str(), "rb")) {
      if (std::fseek(in, -1, SEEK_END) == 0) cut = std::fgetc(in) != '\n';
      std::fclose(in);
    }
    out.reset(std::fopen(generations.c_str(), "a"));
    if (!out) throw Error(str(generations, ": cannot open for appending"));
    if (cut) std::fputc('\n', out.get());
  }
  std::vector<size_t> todo;
  for (size_t i = 0; i < problems.size(); ++i)
    if (!graded.count(i)) todo.push_back(i);
  if (options.on_start) options.on_start(todo.size(), problems.size());

  // Grades one problem's samples and appends them to the generations file.
  auto record = [&](size_t idx, const std::vector<std::string>& texts) {
    MATHRL_CHECK(static_cast<int>(texts.size()) == options.samples, "generator returned ", texts.size(),
                 " samples, expected ", options.samples);
    Graded g;
    std::string lines;
    for (int j = 0; j < options.samples; ++j) {
      SampledAnswer a;
      a.answer = checker.extract(texts[static_cast<size_t>(j)]);
      a.correct = a.answer && checker.equal(*a.answer, problems[idx].gold);
      if (out) {
        lines += str("{\"problem\":", idx, ",\"id\":");
        append_json_string(lines, problems[idx].id);
        lines += str(",\"sample\":", j, ",\"completion\":");
        append_json_string(lines, texts[static_cast<size_t>(j)]);
        lines += ",\"answer\":";
        if (a.answer) append_json_string(lines, *a.answer);
        else lines += "null";
        lines += ",\"gold\":";
        append_json_string(lines, problems[idx].gold);
        lines += str(",\"correct\":", a.correct ? "true" : "false", "}\n");
      }
      g.samples.push_back(std::move(a));
    }
    if (out) {
      if (std::fwrite(lines.data(), 1, lines.size(), out.get()) != lines.size() || std::fflush(out.get()) != 0)
        throw Error(str(generations, ": write failed"));
    }
    if (options.on_graded) options.on_graded(idx, g.samples);
    graded[idx] = std::move(g);
  };

  const size_t chunk = options.batch_problems > 0 ? static_cast<size_t>(options.batch_problems) : std::max<size_t>(1, todo.size());
  for (size_t start = 0; start < todo.size(); start += chunk) {
    size_t end = std::min(todo.size(), start + chunk);
    std::vector<std::string> prompts;
    std::vector<size_t> indices(todo.begin() + static_cast<std::ptrdiff_t>(start), todo.begin() + static_cast<std::ptrdiff_t>(end));
    for (size_t idx : indices) {
      const Problem& p = problems[idx];
      prompts.push_back(options.prompt ? options.prompt(p) : build_prompt(options.benchmark, p, options.style, exemplars));
    }
    std::vector<char> finished(prompts.size(), 0);
    generate(prompts, indices, options.samples, [&](size_t t, const std::vector<std::string>& texts) {
      MATHRL_CHECK(t < prompts.size() && !finished[t], "generator reported prompt ", t, " twice or out of range");
      finished[t] = 1;
      record(indices[t], texts);
    });
    for (size_t t = 0; t < prompts.size(); ++t)
      MATHRL_CHECK(finished[t], "generator returned without finishing prompt ", t, " of ", prompts.size());
  }
  out.reset();

  std::vector<const Graded*> all;
  std::map<std::string, std::vector<const Graded*>> by_level, by_subject;
  for (size_t i = 0; i < problems.size(); ++i) {
    const Graded* g = &graded.at(i);
    all.push_back(g);
    if (!problems[i].level.empty()) by_level[problems[i].level].push_back(g);
    if (!problems[i].subject.empty()) by_subject[problems[i].subject].push_back(g);
  }
  summary.overall = metrics_of(all, ks, checker);
  for (auto& [k, v] : by_level) summary.by_level[k] = metrics_of(v, ks, checker);
  for (auto& [k, v] : by_subject) summary.by_subject[k] = metrics_of(v, ks, checker);
  return summary;
}

std::string summary_json(const EvalSummary& s) {
  std::string out = "{\"benchmark\":";
  append_json_string(out, s.benchmark);
  out += str(",\"samples\":", s.samples, ",\"resumed_problems\":", s.resumed_problems, ",\"overall\":");
  json_metrics(out, s.overall);
  for (const char* group : {"by_level", "by_subject"}) {
    out += str(",\"", group, "\":{");
    bool first = true;
    for (const auto& [name, m] : std::string(group) == "by_level" ? s.by_level : s.by_subject) {
      if (!first) out += ",";
      append_json_string(out, name);
      out += ":";
      json_metrics(out, m);
      first = false;
    }
    out += "}";
  }
  return out + "}";
}

std::string summary_markdown(const std::vector<EvalSummary>& summaries) {
  std::set<int> ks;
  for (const auto& s : summaries)
    for (const auto& [k, v] : s.overall.pass_at) ks.insert(k);
  auto cell = [](const Interval& i) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.1f (%.1f-%.1f)", 100 * i.mean, 100 * i.low, 100 * i.high);
    return std::string(buf);
  };
  std::string out = "| benchmark | problems | samples | accuracy |";
  for (int k : ks) out += str(" pass@", k, " |");
  for (int k : ks)
    if (k > 1) out += str(" maj@", k, " |");
  out += "\n|---|---|---|---|";
  for (int k : ks) out += k > 1 ? "---|---|" : "---|";
  out += "\n";
  for (const auto& s : summaries) {
    out += str("| ", s.benchmark, " | ", s.overall.problems, " | ", s.samples, " | ", cell(s.overall.accuracy), " |");
    for (int k : ks) out += s.overall.pass_at.count(k) ? " " + cell(s.overall.pass_at.at(k)) + " |" : " |";
    for (int k : ks)
      if (k > 1) out += s.overall.maj_at.count(k) ? " " + cell(s.overall.maj_at.at(k)) + " |" : " |";
    out += "\n";
  }
  return out + "\nPercentages with 95% intervals; accuracy is the mean correctness of all samples (greedy accuracy with one sample).\n";
}

}  // namespace mathrl::eval
