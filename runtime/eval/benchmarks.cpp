#include "eval/benchmarks.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <functional>

#include "common/error.h"
#include "common/jsonl.h"
#include "common/strings.h"

namespace mathrl::eval {

namespace {

using Record = rapidjson::Value;
using Adapter = std::function<Problem(const Record&, const std::string& where)>;

std::string field(const Record& r, const char* name, const std::string& where, bool required = true) {
  auto it = r.FindMember(name);
  if (it == r.MemberEnd() || it->value.IsNull()) {
    if (required) throw DataError(str(where, ": missing field '", name, "'"));
    return "";
  }
  if (it->value.IsString()) return std::string(it->value.GetString(), it->value.GetStringLength());
  if (it->value.IsNumber()) return format_number(it->value.GetDouble());
  throw DataError(str(where, ": field '", name, "' must be a string or a number"));
}

std::string strip_commas(std::string s) {
  std::string out;
  for (char c : s)
    if (c != ',') out += c;
  return out;
}

// Joins a body and a question the way the public harnesses do ("... groups. How big is ...").
std::string join_sentences(const std::string& body, const std::string& question) {
  std::string b(trim(body));
  if (!b.empty() && b.back() != '.' && b.back() != '?' && b.back() != '!') b += ".";
  return b + " " + std::string(trim(question));
}

std::string lettered_options(const Record& options, const std::string& where) {
  if (!options.IsArray()) throw DataError(str(where, ": 'options' must be a list"));
  std::string out;
  for (rapidjson::SizeType i = 0; i < options.Size(); ++i) {
    std::string opt;
    if (options[i].IsString()) opt = options[i].GetString();
    // MMLU's option text "None" went through pandas and became NaN in the shared file.
    else if (options[i].IsNumber()) opt = std::isnan(options[i].GetDouble()) ? "None" : format_number(options[i].GetDouble());
    else throw DataError(str(where, ": option ", i, " is not a string"));
    // Some sets already carry "(A)" prefixes.
    if (starts_with(opt, "(") && opt.size() > 2 && opt[2] == ')') out += opt + "\n";
    else out += str("(", static_cast<char>('A' + i), ") ", opt, "\n");
  }
  return out;
}

Problem gsm8k(const Record& r, const std::string& w) {
  Problem p;
  p.question = field(r, "question", w);
  std::string answer = field(r, "answer", w);
  auto pos = answer.rfind("####");
  if (pos == std::string::npos) throw DataError(str(w, ": GSM8K answer has no '#### N' line"));
  p.gold = strip_commas(std::string(trim(answer.substr(pos + 4))));
  p.solution = std::string(trim(answer.substr(0, pos)));
  return p;
}

Problem math(const Record& r, const std::string& w) {
  Problem p;
  p.question = field(r, "problem", w);
  p.solution = field(r, "solution", w);
  p.gold = field(r, "answer", w, false);
  if (p.gold.empty()) p.gold = last_boxed(p.solution);
  if (p.gold.empty()) throw DataError(str(w, ": no answer field and no \\boxed{} in the solution"));
  p.level = field(r, "level", w, false);
  if (!p.level.empty() && p.level.find("Level") == std::string::npos) p.level = "Level " + p.level;
  p.subject = field(r, "type", w, false);
  if (p.subject.empty()) p.subject = field(r, "subject", w, false);
  p.id = field(r, "unique_id", w, false);
  return p;
}

Problem svamp(const Record& r, const std::string& w) {
  Problem p;
  p.question = join_sentences(field(r, "Body", w), field(r, "Question", w));
  p.gold = field(r, "Answer", w);
  p.subject = field(r, "Type", w, false);
  p.id = field(r, "ID", w, false);
  return p;
}

Problem asdiv(const Record& r, const std::string& w) {
  Problem p;
  p.question = join_sentences(field(r, "body", w), field(r, "question", w));
  std::string a = field(r, "answer", w);
  auto paren = a.find(" (");  // "9 (apples)": the unit goes
  p.gold = std::string(trim(paren == std::string::npos ? a : a.substr(0, paren)));
  p.subject = field(r, "solution_type", w, false);
  return p;
}

Problem mawps(const Record& r, const std::string& w) {
  Problem p;
  p.question = field(r, "input", w);
  p.gold = field(r, "target", w);
  p.subject = field(r, "type", w, false);
  return p;
}

Problem minerva(const Record& r, const std::string& w) {
  Problem p;
  p.question = field(r, "problem", w);
  p.solution = field(r, "solution", w);
  p.gold = field(r, "answer", w, false);
  if (p.gold.empty()) p.gold = last_boxed(p.solution);
  if (p.gold.empty()) throw DataError(str(w, ": no answer and no \\boxed{} in the solution"));
  p.subject = field(r, "type", w, false);
  return p;
}

Problem cmath(const Record& r, const std::string& w) {
  Problem p;
  p.question = field(r, "question", w);
  p.gold = field(r, "golden", w);
  p.level = "grade " + field(r, "grade", w, false);
  p.language = "zh";
  return p;
}

Problem mgsm_zh(const Record& r, const std::string& w) {
  Problem p;
  auto it = r.FindMember("messages");
  if (it == r.MemberEnd() || !it->value.IsArray() || it->value.Empty() || !it->value[0].IsObject())
    throw DataError(str(w, ": 'messages' must be a non-empty list of chat turns"));
  p.question = field(it->value[0], "content", w);
  p.gold = field(r, "answer", w);
  p.language = "zh";
  return p;
}

Problem sat(const Record& r, const std::string& w) {
  Problem p;
  p.question = field(r, "question", w) + "\n" + field(r, "options", w);
  p.gold = field(r, "Answer", w);
  p.multiple_choice = true;
  return p;
}

Problem mmlu_stem(const Record& r, const std::string& w) {
  Problem p;
  auto it = r.FindMember("options");
  if (it == r.MemberEnd()) throw DataError(str(w, ": missing field 'options'"));
  p.question = field(r, "question", w) + "\n" + lettered_options(it->value, w);
  p.gold = field(r, "answer", w);
  p.subject = field(r, "topic", w, false);
  p.multiple_choice = true;
  return p;
}

Problem gaokao_cloze(const Record& r, const std::string& w) {
  Problem p;
  p.question = field(r, "question", w);
  p.gold = field(r, "answer", w);
  p.language = "zh";
  return p;
}

Problem gaokao_qa(const Record& r, const std::string& w) {
  Problem p;
  auto it = r.FindMember("options");
  if (it == r.MemberEnd()) throw DataError(str(w, ": missing field 'options'"));
  p.question = field(r, "question", w) + "\n" + lettered_options(it->value, w);
  p.gold = field(r, "label", w);
  p.language = "zh";
  p.multiple_choice = true;
  return p;
}

struct Entry {
  BenchmarkInfo info;
  Adapter adapt;
};

const std::vector<Entry>& entries() {
  static const std::vector<Entry> table = {
      {{"gsm8k", "gsm8k/test.jsonl", "GSM8K test, 1319 grade-school word problems"}, gsm8k},
      {{"math", "math/test.jsonl", "MATH test, 5000 competition problems"}, math},
      {{"math500", "math500/test.jsonl", "MATH500, the PRM800K test split of MATH"}, math},
      {{"svamp", "svamp/test.jsonl", "SVAMP, 1000 arithmetic word problems"}, svamp},
      {{"asdiv", "asdiv/test.jsonl", "ASDiv, 2215 word problems"}, asdiv},
      {{"mawps", "mawps/test.jsonl", "MAWPS, 2065 word problems"}, mawps},
      {{"minerva_math", "minerva_math/test.jsonl", "Minerva OCW courses, 272 problems (answer in \\boxed)"}, minerva},
      {{"ocw", "ocw/test.jsonl", "OCW courses, 272 problems (answer field)"}, minerva},
      {{"cmath", "cmath/test.jsonl", "CMATH, 1098 Chinese grade-school problems"}, cmath},
      {{"mgsm_zh", "mgsm_zh/mgsm_zh.jsonl", "MGSM Chinese, 250 problems"}, mgsm_zh},
      {{"sat", "sat/test.jsonl", "SAT math, 32 multiple-choice problems"}, sat},
      {{"mmlu_stem", "mmlu_stem/test.jsonl", "MMLU STEM, 3018 multiple-choice questions"}, mmlu_stem},
      {{"gaokao_cloze", "agieval/gaokao-mathcloze.jsonl", "Gaokao math cloze, 118 problems"}, gaokao_cloze},
      {{"gaokao_qa", "agieval/gaokao-mathqa.jsonl", "Gaokao math multiple choice, 351 problems"}, gaokao_qa},
  };
  return table;
}

}  // namespace

const std::vector<BenchmarkInfo>& benchmarks() {
  static const std::vector<BenchmarkInfo> infos = [] {
    std::vector<BenchmarkInfo> v;
    for (const auto& e : entries()) v.push_back(e.info);
    return v;
  }();
  return infos;
}

std::vector<std::string> benchmark_names() {
  std::vector<std::string> names;
  for (const auto& b : benchmarks()) names.push_back(b.name);
  return names;
}

std::vector<Problem> load_benchmark(const std::string& name, const std::string& data_dir, const std::string& path,
                                    bool skip_malformed) {
  const Entry* entry = nullptr;
  for (const auto& e : entries())
    if (e.info.name == name) entry = &e;
  if (!entry) throw UsageError(str("unknown benchmark '", name, "'", did_you_mean(name, benchmark_names())));
  std::string file = path.empty() ? data_dir + "/" + entry->info.file : path;
  LineReader reader(file);
  std::vector<Problem> problems;
  std::string line;
  while (reader.next(line)) {
    if (trim(line).empty()) continue;
    std::string where = str(file, ":", reader.line_number());
    Problem p;
    try {
      rapidjson::Document doc = parse_json(line, where);
      if (!doc.IsObject()) throw DataError(str(where, ": expected a JSON object"));
      p = entry->adapt(doc, where);
    } catch (const DataError&) {
      if (skip_malformed) continue;
      throw;
    }
    if (p.id.empty()) p.id = str(name, "/", problems.size());
    problems.push_back(std::move(p));
  }
  return problems;
}

std::string last_boxed(const std::string& text) {
  // The later of the last \boxed and the last \fbox.
  size_t boxed = text.rfind("\\boxed"), fbox = text.rfind("\\fbox");
  size_t pos = boxed == std::string::npos ? fbox : fbox == std::string::npos ? boxed : std::max(boxed, fbox);
  if (pos != std::string::npos) {
    size_t i = pos + (pos == boxed ? 6 : 5);
    while (i < text.size() && text[i] == ' ') ++i;
    if (i < text.size() && text[i] == '{') {
      int depth = 0;
      for (size_t j = i; j < text.size(); ++j) {
        if (text[j] == '{') ++depth;
        else if (text[j] == '}' && --depth == 0) return text.substr(i + 1, j - i - 1);
      }
      return "";  // unbalanced
    }
    // "\boxed 5": the token after the space, up to '$' or whitespace.
    size_t end = text.find_first_of(" $\n", i);
    return text.substr(i, end == std::string::npos ? std::string::npos : end - i);
  }
  return "";
}

std::string format_number(double value) {
  if (std::isfinite(value) && value == std::floor(value) && std::fabs(value) < 1e15) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(value));
    return buf;
  }
  for (int precision = 1; precision <= 17; ++precision) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*g", precision, value);
    if (std::strtod(buf, nullptr) == value) return buf;
  }
  return std::to_string(value);
}

}  // namespace mathrl::eval
