// `mathrl grade [FILE]`: JSONL {"pred", "gold"} in, {"equal", "pred_answer", "gold_answer"} out.
#include <cstdio>
#include <string>

#include <rapidjson/writer.h>

#include "cli/options.h"
#include "common/error.h"
#include "common/jsonl.h"
#include "reward/grader.h"

namespace mathrl::cli {
namespace {

void append_optional(std::string& out, const std::optional<std::string>& s) {
  if (s) append_json_string(out, *s);
  else out += "null";
}

// A field as text: strings as is, numbers formatted (GSM8K golds are often numbers).
std::optional<std::string> field_text(const rapidjson::Value& obj, const char* name, std::string& error) {
  auto it = obj.FindMember(name);
  if (it == obj.MemberEnd()) {
    error = str("missing field '", name, "'");
    return std::nullopt;
  }
  const auto& v = it->value;
  if (v.IsString()) return std::string(v.GetString(), v.GetStringLength());
  if (v.IsInt64()) return std::to_string(v.GetInt64());
  if (v.IsUint64()) return std::to_string(v.GetUint64());
  if (v.IsNumber()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v.GetDouble());
    return std::string(buf);
  }
  error = str("field '", name, "' must be a string or a number");
  return std::nullopt;
}

}  // namespace

int run_grade(const Args& args) {
  std::string path = args.positional().empty() ? "-" : args.positional()[0];
  ExtractOptions options;
  options.last_number_fallback = !args.flag("no-fallback");
  LineReader reader(path);
  std::string line, out;
  while (reader.next(line)) {
    out.clear();
    std::string error;
    std::optional<std::string> pred, gold;
    try {
      auto doc = parse_json(line, str(reader.name(), ":", reader.line_number()));
      if (!doc.IsObject()) {
        error = "line is not a JSON object";
      } else {
        pred = field_text(doc, "pred", error);
        if (pred) gold = field_text(doc, "gold", error);
      }
    } catch (const DataError& e) {
      error = e.what();  // already names the line
    }
    if (pred && gold && error.empty()) {
      GradeResult r = grade(*pred, *gold, options);
      out += r.equal ? "{\"equal\": true, \"pred_answer\": " : "{\"equal\": false, \"pred_answer\": ";
      append_optional(out, r.pred_answer);
      out += ", \"gold_answer\": ";
      append_optional(out, r.gold_answer);
      out += "}\n";
    } else {
      out += "{\"equal\": false, \"pred_answer\": null, \"gold_answer\": null, \"error\": ";
      if (error.rfind(reader.name(), 0) != 0) error = str(reader.name(), ":", reader.line_number(), ": ", error);
      append_json_string(out, error);
      out += "}\n";
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
  }
  std::fflush(stdout);
  return 0;
}

}  // namespace mathrl::cli
