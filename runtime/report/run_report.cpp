#include "report/run_report.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>

#include "common/error.h"
#include "common/jsonl.h"
#include "common/strings.h"
#include "report/svg_plot.h"

namespace mathrl::report {

namespace fs = std::filesystem;

namespace {

std::string percent(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", 100 * v);
  return buf;
}

std::string short_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

std::string slug(const std::string& s) {
  std::string out;
  for (char c : s) out += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return out.empty() ? "run" : out;
}

// Lower-cased words of a tag: "rl/mean_reward" -> {rl, mean, reward}.
std::vector<std::string> words(const std::string& tag) {
  std::vector<std::string> out(1);
  for (char c : tag) {
    if (std::isalnum(static_cast<unsigned char>(c))) out.back() += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    else if (!out.back().empty()) out.emplace_back();
  }
  if (out.back().empty()) out.pop_back();
  return out;
}

// The plot a metric belongs on, or "" for none (learning rates, throughput, ...).
std::string metric_group(const std::string& tag) {
  auto ws = words(tag);
  auto any = [&](auto pred) { return std::any_of(ws.begin(), ws.end(), pred); };
  // Timings, throughput and memory ("time/reward", "tokens_per_s/generate") are not quantities to plot.
  if (!ws.empty() && (ws[0] == "time" || ws[0] == "tokens" || ws[0] == "memory")) return "";
  if (any([](const std::string& w) { return w.find("reward") != std::string::npos; })) return "reward";
  if (any([](const std::string& w) { return starts_with(w, "kl"); })) return "kl";
  if (any([](const std::string& w) { return w == "len" || w.find("length") != std::string::npos; })) return "length";
  if (any([](const std::string& w) { return starts_with(w, "acc") || w == "correct"; })) return "accuracy";
  if (any([](const std::string& w) { return w.find("loss") != std::string::npos || w == "ppl" || w == "perplexity"; })) return "loss";
  return "";
}

const char* group_label(const std::string& group) {
  if (group == "reward") return "reward";
  if (group == "kl") return "KL divergence";
  if (group == "length") return "completion length (tokens)";
  if (group == "accuracy") return "accuracy";
  return "loss";
}

int stage_rank(const std::string& stage) {
  static const std::vector<std::string> order = {"tokenizer", "base", "instruct", "sft", "rl"};
  std::string first = split(stage, '/').front();
  for (size_t i = 0; i < order.size(); ++i)
    if (first == order[i]) return static_cast<int>(i);
  return static_cast<int>(order.size());
}

double member_number(const rapidjson::Value& obj, const char* name, const std::string& where) {
  auto it = obj.FindMember(name);
  if (it == obj.MemberEnd() || !it->value.IsNumber()) throw DataError(str(where, ": '", name, "' must be a number"));
  return it->value.GetDouble();
}

// {"1": {"mean": ...}, "4": {...}} -> {1: mean, 4: mean}
std::map<int, double> k_means(const rapidjson::Value& obj, const char* name, const std::string& where) {
  std::map<int, double> out;
  auto it = obj.FindMember(name);
  if (it == obj.MemberEnd()) return out;
  if (!it->value.IsObject()) throw DataError(str(where, ": '", name, "' must be an object"));
  for (const auto& m : it->value.GetObject()) {
    int k = std::atoi(m.name.GetString());
    if (k < 1 || !m.value.IsObject()) throw DataError(str(where, ": bad entry '", m.name.GetString(), "' in '", name, "'"));
    out[k] = member_number(m.value, "mean", where);
  }
  return out;
}

struct Source {
  std::string label;  // "run" for the run's own metrics.jsonl, else its sub-directory
  MetricSeries metrics;
};

std::vector<Source> find_metric_sources(const fs::path& run) {
  std::vector<Source> out;
  std::vector<fs::path> files;
  for (auto it = fs::recursive_directory_iterator(run); it != fs::recursive_directory_iterator(); ++it) {
    std::string name = it->path().filename().string();
    if (it->is_directory() && (name == "plots" || name == "checkpoints" || starts_with(name, "."))) it.disable_recursion_pending();
    else if (it->is_regular_file() && name == "metrics.jsonl") files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    std::string rel = fs::relative(f.parent_path(), run).generic_string();
    out.push_back({rel == "." ? "run" : rel, read_metrics_jsonl(f.string())});
  }
  std::stable_sort(out.begin(), out.end(), [](const Source& a, const Source& b) {
    return (a.label == "run" ? -1 : stage_rank(a.label)) < (b.label == "run" ? -1 : stage_rank(b.label));
  });
  return out;
}

std::string cell(const std::map<int, double>& m, int k) { return m.count(k) ? percent(m.at(k)) : "–"; }

struct Row {
  std::string stage, benchmark;
  const EvalResult* greedy = nullptr;   // samples == 1
  const EvalResult* sampled = nullptr;  // the most samples
};

std::string accuracy_section(const std::vector<EvalResult>& results, const fs::path& run, std::vector<std::string>& plots) {
  std::vector<Row> rows;
  for (const auto& r : results) {
    auto it = std::find_if(rows.begin(), rows.end(), [&](const Row& x) { return x.stage == r.stage && x.benchmark == r.benchmark; });
    if (it == rows.end()) {
      rows.push_back({r.stage, r.benchmark});
      it = rows.end() - 1;
    }
    if (r.samples == 1) it->greedy = &r;
    else if (!it->sampled || r.samples > it->sampled->samples) it->sampled = &r;
  }
  std::set<int> ks;
  for (const auto& row : rows)
    if (row.sampled)
      for (const auto& [k, v] : row.sampled->pass_at)
        if (k > 1) ks.insert(k);

  std::string md = "## Accuracy by stage\n\n| stage | benchmark | problems | greedy | Δ greedy | samples | mean@n |";
  for (int k : ks) md += str(" maj@", k, " |");
  for (int k : ks) md += str(" pass@", k, " |");
  md += "\n|---|---|---:|---:|---:|---:|---:|";
  for (size_t i = 0; i < 2 * ks.size(); ++i) md += "---:|";
  md += "\n";
  std::map<std::string, double> last_greedy;  // by benchmark: the previous stage's greedy accuracy
  for (const auto& row : rows) {
    const EvalResult* any = row.greedy ? row.greedy : row.sampled;
    std::string delta = "–";
    if (row.greedy) {
      if (last_greedy.count(row.benchmark)) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%+.1f", 100 * (row.greedy->accuracy - last_greedy[row.benchmark]));
        delta = buf;
      }
      last_greedy[row.benchmark] = row.greedy->accuracy;
    }
    md += str("| ", row.stage, " | ", row.benchmark, " | ", any->problems, " | ",
              row.greedy ? percent(row.greedy->accuracy) : "–", " | ", delta, " | ",
              row.sampled ? std::to_string(row.sampled->samples) : "–", " | ",
              row.sampled ? percent(row.sampled->accuracy) : "–", " |");
    for (int k : ks) md += " " + (row.sampled ? cell(row.sampled->maj_at, k) : "–") + " |";
    for (int k : ks) md += " " + (row.sampled ? cell(row.sampled->pass_at, k) : "–") + " |";
    md += "\n";
  }
  md += "\nPercentages. greedy: one greedy completion per problem; mean@n: mean correctness of the n sampled "
        "completions; Δ greedy: change from the previous stage, in points.\n\n";

  // pass@k and maj@k against k, one series per stage, one plot per benchmark.
  std::vector<std::string> benchmarks;
  for (const auto& row : rows)
    if (row.sampled && std::find(benchmarks.begin(), benchmarks.end(), row.benchmark) == benchmarks.end())
      benchmarks.push_back(row.benchmark);
  for (const auto& bench : benchmarks) {
    for (const char* kind : {"pass", "maj"}) {
      std::vector<Series> series;
      for (const auto& row : rows) {
        if (row.benchmark != bench || !row.sampled) continue;
        Series s{row.stage, {}, {}};
        for (const auto& [k, v] : std::string(kind) == "pass" ? row.sampled->pass_at : row.sampled->maj_at) {
          s.x.push_back(k);
          s.y.push_back(100 * v);
        }
        series.push_back(std::move(s));
      }
      std::string name = str(kind, "_at_k_", slug(bench), ".svg");
      PlotOptions o;
      o.title = str(bench, ": ", kind, "@k by stage");
      o.x_label = "k";
      o.y_label = str(kind, "@k (%)");
      o.markers = true;
      write_file_atomic((run / "plots" / name).string(), svg_line_plot(series, o));
      md += str("![", o.title, "](plots/", name, ")\n\n");
      plots.push_back(name);
    }
  }
  return md;
}

std::string metrics_section(const Source& src, const fs::path& run, std::vector<std::string>& plots) {
  std::string md = str("## Metrics: ", src.label, "\n\n");
  std::map<std::string, std::vector<std::string>> groups;
  for (const auto& [tag, points] : src.metrics) {
    std::string g = metric_group(tag);
    if (!g.empty() && !points.empty()) groups[g].push_back(tag);
  }
  for (const char* g : {"loss", "reward", "kl", "length", "accuracy"}) {
    if (!groups.count(g)) continue;
    std::vector<Series> series;
    for (const auto& tag : groups[g]) {
      Series s{tag, {}, {}};
      for (const auto& [x, y] : src.metrics.at(tag)) {
        s.x.push_back(x);
        s.y.push_back(y);
      }
      series.push_back(std::move(s));
    }
    std::string name = str(slug(src.label), "_", g, ".svg");
    PlotOptions o;
    o.title = str(src.label, ": ", group_label(g));
    o.x_label = "step";
    o.y_label = group_label(g);
    o.y_from_zero = std::string(g) == "accuracy";
    write_file_atomic((run / "plots" / name).string(), svg_line_plot(series, o));
    md += str("![", o.title, "](plots/", name, ")\n\n");
    plots.push_back(name);
  }
  md += "| metric | points | first step | last step | last | min | max |\n|---|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& [tag, points] : src.metrics) {
    if (points.empty()) continue;
    double lo = points[0].second, hi = lo;
    for (const auto& p : points) lo = std::min(lo, p.second), hi = std::max(hi, p.second);
    md += str("| ", tag, " | ", points.size(), " | ", short_number(points.front().first), " | ",
              short_number(points.back().first), " | ", short_number(points.back().second), " | ", short_number(lo), " | ",
              short_number(hi), " |\n");
  }
  return md + "\n";
}

}  // namespace

MetricSeries read_metrics_jsonl(const std::string& path) {
  MetricSeries out;
  LineReader reader(path);
  std::string line;
  while (reader.next(line)) {
    if (trim(line).empty()) continue;
    std::string where = str(path, ":", reader.line_number());
    auto doc = parse_json(line, where);
    if (!doc.IsObject()) throw DataError(str(where, ": a metrics line must be a JSON object"));
    double step = member_number(doc, "step", where);
    for (const auto& m : doc.GetObject()) {
      std::string name(m.name.GetString(), m.name.GetStringLength());
      if (name == "step" || !m.value.IsNumber()) continue;  // null = NaN/inf when written
      out[name].emplace_back(step, m.value.GetDouble());
    }
  }
  return out;
}

namespace {

EvalResult eval_result(const rapidjson::Value& doc, const std::string& stage, const std::string& path) {
  if (!doc.IsObject() || !doc.HasMember("overall") || !doc["overall"].IsObject())
    throw DataError(str(path, ": not an evaluation summary (no 'overall' object)"));
  EvalResult r;
  r.stage = stage;
  auto b = doc.FindMember("benchmark");
  r.benchmark = b != doc.MemberEnd() && b->value.IsString() ? b->value.GetString() : "?";
  if (doc.HasMember("samples")) r.samples = static_cast<int>(member_number(doc, "samples", path));
  const auto& overall = doc["overall"];
  r.problems = static_cast<int>(member_number(overall, "problems", path));
  auto acc = overall.FindMember("accuracy");
  if (acc == overall.MemberEnd() || !acc->value.IsObject()) throw DataError(str(path, ": 'accuracy' must be an object"));
  r.accuracy = member_number(acc->value, "mean", path);
  r.pass_at = k_means(overall, "pass_at", path);
  r.maj_at = k_means(overall, "maj_at", path);
  return r;
}

}  // namespace

std::vector<EvalResult> read_eval_summary(const std::string& path, const std::string& stage) {
  auto doc = parse_json(read_file(path), path);
  std::vector<EvalResult> out;
  if (doc.IsObject() && doc.HasMember("results")) {
    if (!doc["results"].IsArray()) throw DataError(str(path, ": 'results' must be an array"));
    for (const auto& r : doc["results"].GetArray()) out.push_back(eval_result(r, stage, path));
  } else {
    out.push_back(eval_result(doc, stage, path));
  }
  return out;
}

std::vector<EvalResult> find_eval_results(const std::string& run_dir) {
  std::vector<EvalResult> out;
  fs::path run(run_dir);
  std::vector<fs::path> files;
  for (auto it = fs::recursive_directory_iterator(run); it != fs::recursive_directory_iterator(); ++it) {
    std::string name = it->path().filename().string();
    if (it->is_directory() && (name == "plots" || name == "checkpoints" || starts_with(name, "."))) it.disable_recursion_pending();
    else if (it->is_regular_file() && name == "summary.json") files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    std::vector<std::string> parts;
    for (const auto& part : fs::relative(f.parent_path(), run))
      if (part != "eval" && part != ".") parts.push_back(part.string());
    for (auto& r : read_eval_summary(f.string(), "")) {
      std::vector<std::string> p = parts;
      if (!p.empty() && (p.back() == "greedy" || p.back() == "sampled" || p.back() == r.benchmark)) p.pop_back();
      for (const auto& s : p) r.stage += (r.stage.empty() ? "" : "/") + s;
      if (r.stage.empty()) r.stage = "run";
      out.push_back(std::move(r));
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const EvalResult& a, const EvalResult& b) {
    return stage_rank(a.stage) < stage_rank(b.stage);
  });
  return out;
}

std::string write_run_report(const std::string& run_dir, const ReportOptions& options) {
  fs::path run(run_dir);
  if (!fs::is_directory(run)) throw DataError(str(run_dir, ": no such run directory"));
  std::error_code ec;
  fs::create_directories(run / "plots", ec);
  if (ec) throw Error(str(run_dir, "/plots: cannot create: ", ec.message()));

  std::string title = options.title.empty() ? str("Run ", fs::absolute(run).lexically_normal().filename().string()) : options.title;
  if (title == "Run ") title = "Run " + fs::absolute(run).lexically_normal().parent_path().filename().string();
  std::string md = str("# ", title, "\n\n");
  std::vector<std::string> plots;
  auto results = find_eval_results(run_dir);
  auto sources = find_metric_sources(run);
  if (results.empty()) md += "No evaluation summaries (eval/<stage>/summary.json) in this run.\n\n";
  else md += accuracy_section(results, run, plots);
  for (const auto& src : sources) md += metrics_section(src, run, plots);
  if (sources.empty()) md += "No metrics.jsonl in this run.\n";
  md += "\nGenerated by `mathrl report`. Metrics are also in TensorBoard event files: `tensorboard --logdir runs/`.\n";
  std::string path = (run / "report.md").string();
  write_file_atomic(path, md);
  return path;
}

}  // namespace mathrl::report
