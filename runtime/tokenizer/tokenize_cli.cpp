// `mathrl tokenize`: JSONL text -> JSONL ids (or back with --decode), one output line per input line;
// with --shard, a token shard (data/shard.h) of the documents separated by EOS instead.
#include <cstdio>
#include <memory>

#include <rapidjson/document.h>

#include "cli/options.h"
#include "common/error.h"
#include "common/jsonl.h"
#include "common/strings.h"
#include "data/shard.h"
#include "tokenizer/tokenizer.h"

namespace mathrl::cli {
namespace {

// Buffered stdout; flushed when large and at the end (and by main on error).
void write_out(std::string& buf, bool force) {
  if (buf.size() < (1 << 16) && !force) return;
  if (!buf.empty() && std::fwrite(buf.data(), 1, buf.size(), stdout) != buf.size())
    throw Error("tokenize: write to stdout failed");
  buf.clear();
}

std::string where(const LineReader& in) { return str(in.name(), ":", in.line_number()); }

}  // namespace

int run_tokenize(const Args& args) {
  const auto& pos = args.positional();
  std::string input = pos.empty() ? "-" : pos[0];
  bool decode = args.flag("decode");
  bool raw = args.flag("raw");
  bool add_special = args.flag("add-special");
  bool skip_special = args.flag("skip-special");
  std::string field = args.str_or("field", decode ? "ids" : "text");
  if (decode && add_special) throw UsageError("--add-special applies to encoding, not --decode");
  if (!decode && skip_special) throw UsageError("--skip-special applies to --decode only");
  if (decode && raw) throw UsageError("--raw applies to encoding, not --decode");
  const std::string shard_path = args.str_or("shard", "");
  if (decode && !shard_path.empty()) throw UsageError("--shard applies to encoding, not --decode");

  auto tok = load_tokenizer(args.str("tokenizer"));
  std::unique_ptr<data::ShardWriter> shard;
  if (!shard_path.empty()) {
    if (tok->eos_id() < 0)
      throw UsageError("--shard separates documents with the tokenizer's EOS token, and this tokenizer has none");
    const auto dtype = tok->vocab_size() <= 65536 ? data::ShardDtype::U16 : data::ShardDtype::U32;
    shard = std::make_unique<data::ShardWriter>(shard_path, dtype, tok->eos_id());
  }
  size_t documents = 0;
  LineReader in(input);
  std::string line, out;
  std::vector<int32_t> ids;
  std::string key = decode ? "text" : "ids";
  while (in.next(line)) {
    if (decode) {
      rapidjson::Document doc = parse_json(line, where(in));
      auto it = doc.IsObject() ? doc.FindMember(field.c_str()) : doc.MemberEnd();
      if (!doc.IsObject() || it == doc.MemberEnd() || !it->value.IsArray())
        throw DataError(str(where(in), ": expected an object with an array field '", field, "'"));
      ids.clear();
      for (const auto& v : it->value.GetArray()) {
        if (!v.IsInt64()) throw DataError(str(where(in), ": '", field, "' holds a non-integer value"));
        int64_t id = v.GetInt64();
        if (id < 0 || id >= int64_t(tok->vocab_size()))
          throw DataError(str(where(in), ": id ", id, " out of range [0, ", tok->vocab_size(), ")"));
        ids.push_back(int32_t(id));
      }
      out += "{\"text\":";
      append_json_string(out, tok->decode(ids, skip_special));
      out += "}\n";
    } else {
      std::string text;
      if (raw) {
        text = line;
      } else {
        rapidjson::Document doc = parse_json(line, where(in));
        auto it = doc.IsObject() ? doc.FindMember(field.c_str()) : doc.MemberEnd();
        if (!doc.IsObject() || it == doc.MemberEnd() || !it->value.IsString())
          throw DataError(str(where(in), ": expected an object with a string field '", field, "'"));
        text.assign(it->value.GetString(), it->value.GetStringLength());
      }
      if (!is_valid_utf8(text)) throw DataError(str(where(in), ": text is not valid UTF-8"));
      ids.clear();
      tok->encode_into(text, add_special, ids);
      if (shard) {
        shard->append_document(ids);
        ++documents;
        continue;
      }
      out += "{\"ids\":[";
      for (size_t k = 0; k < ids.size(); ++k) {
        if (k) out += ',';
        out += std::to_string(ids[k]);
      }
      out += "]}\n";
    }
    write_out(out, false);
  }
  if (shard) {
    shard->finish();
    std::fprintf(stderr, "tokenize: wrote %zu documents, %llu tokens (uint%d, EOS-separated) to %s\n", documents,
                 static_cast<unsigned long long>(shard->count()), tok->vocab_size() <= 65536 ? 16 : 32,
                 shard_path.c_str());
    return 0;
  }
  write_out(out, true);
  std::fflush(stdout);
  return 0;
}

}  // namespace mathrl::cli
