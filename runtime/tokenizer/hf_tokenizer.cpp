#include "tokenizer/hf_tokenizer.h"

#include <algorithm>
#include <filesystem>

#include <rapidjson/document.h>
#include <utf8proc.h>

#include "common/error.h"
#include "common/jsonl.h"
#include "common/strings.h"
#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/regex.h"

namespace mathrl {
namespace {

namespace fs = std::filesystem;
using Json = rapidjson::Value;

// ---- byte-level alphabet (GPT-2's bytes_to_unicode) -------------------------------------------
struct ByteAlphabet {
  std::string byte_to_utf8[256];
  std::unordered_map<uint32_t, uint8_t> cp_to_byte;
  ByteAlphabet() {
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      uint32_t cp = printable ? uint32_t(b) : uint32_t(256 + extra++);
      utf8proc_uint8_t buf[4];
      auto n = utf8proc_encode_char(cp, buf);
      byte_to_utf8[b].assign(reinterpret_cast<char*>(buf), n);
      cp_to_byte[cp] = uint8_t(b);
    }
  }
};
const ByteAlphabet& byte_alphabet() {
  static const ByteAlphabet alphabet;
  return alphabet;
}

// Token string written in byte-level chars -> the bytes it stands for; the raw string when any
// character is outside the alphabet (the ByteLevel decoder's rule).
std::string byte_level_to_bytes(std::string_view token) {
  const auto& map = byte_alphabet().cp_to_byte;
  std::string out;
  auto p = reinterpret_cast<const utf8proc_uint8_t*>(token.data());
  utf8proc_ssize_t left = token.size();
  while (left > 0) {
    utf8proc_int32_t cp;
    auto n = utf8proc_iterate(p, left, &cp);
    if (n <= 0) return std::string(token);
    auto it = map.find(uint32_t(cp));
    if (it == map.end()) return std::string(token);
    out.push_back(char(it->second));
    p += n;
    left -= n;
  }
  return out;
}

// ---- pre-tokenizer ------------------------------------------------------------------------------
enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

struct SplitStep {
  std::unique_ptr<Regex> regex;
  Behavior behavior = Behavior::Isolated;
  bool invert = false;
};

// GPT-2's pattern, which ByteLevel(use_regex=true) applies.
const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

using Span = std::pair<size_t, size_t>;

// Splits `text` by `regex` (matches and gaps), then groups them per the behaviour. Appends views.
void split_by(const Regex& regex, Behavior behavior, bool invert, std::string_view text,
              std::vector<std::string_view>& out) {
  thread_local std::vector<Span> matches;
  thread_local std::vector<std::pair<Span, bool>> parts, grouped;
  matches.clear();
  parts.clear();
  grouped.clear();
  regex.find_all(text, matches);
  size_t prev = 0;
  for (auto [b, e] : matches) {
    if (prev != b) parts.push_back({{prev, b}, invert});
    parts.push_back({{b, e}, !invert});
    prev = e;
  }
  if (prev != text.size()) parts.push_back({{prev, text.size()}, invert});
  switch (behavior) {
    case Behavior::Isolated:
      grouped = parts;
      break;
    case Behavior::Removed:
      for (auto& p : parts)
        if (!p.second) grouped.push_back(p);
      break;
    case Behavior::MergedWithPrevious: {
      bool previous_match = false;
      for (auto& p : parts) {
        if (p.second && !previous_match && !grouped.empty()) grouped.back().first.second = p.first.second;
        else grouped.push_back(p);
        previous_match = p.second;
      }
      break;
    }
    case Behavior::MergedWithNext: {
      bool previous_match = false;
      for (size_t k = parts.size(); k-- > 0;) {
        auto& p = parts[k];
        if (p.second && !previous_match && !grouped.empty()) grouped.back().first.first = p.first.first;
        else grouped.push_back(p);
        previous_match = p.second;
      }
      std::reverse(grouped.begin(), grouped.end());
      break;
    }
    case Behavior::Contiguous: {
      bool previous_match = false;
      for (auto& p : parts) {
        if (p.second == previous_match && !grouped.empty()) grouped.back().first.second = p.first.second;
        else grouped.push_back(p);
        previous_match = p.second;
      }
      break;
    }
  }
  for (auto& [span, m] : grouped)
    if (span.second > span.first) out.push_back(text.substr(span.first, span.second - span.first));
}

// ---- the tokenizer ------------------------------------------------------------------------------
struct Spec {
  TokenMap vocab;
  std::vector<std::pair<std::string, std::string>> merges;
  BpeModel::Config bpe;
  std::vector<AddedToken> added;
  Normalizer normalizer;
  std::vector<SplitStep> splits;
  bool byte_level = false;  // ByteLevel pre-tokenizer last in the sequence
  bool byte_level_prefix_space = false;
  bool byte_level_regex = false;
  std::vector<int32_t> prefix, suffix;  // post-processor, single sequence
  enum class Decoder { ByteLevel, Join } decoder = Decoder::Join;
  std::string kind;
  std::string where;
};

class HfTokenizer final : public Tokenizer {
 public:
  explicit HfTokenizer(Spec spec)
      : model_(std::move(spec.vocab), spec.merges, spec.bpe, spec.where),
        added_(std::move(spec.added)),
        normalizer_(std::move(spec.normalizer)),
        splits_(std::move(spec.splits)),
        byte_level_(spec.byte_level),
        prefix_space_(spec.byte_level_prefix_space),
        prefix_(std::move(spec.prefix)),
        suffix_(std::move(spec.suffix)),
        decoder_(spec.decoder) {
    kind_ = spec.kind;
    if (spec.byte_level_regex) gpt2_regex_ = std::make_unique<Regex>(kGpt2Pattern, false, "ByteLevel");
    size_t size = 0;
    auto check_id = [&](const std::string& tok, int32_t id) {
      if (id < 0 || id >= (1 << 24))
        throw DataError(str(spec.where, ": token '", tok, "' has id ", id, " (expected 0 <= id < 16777216)"));
      size = std::max(size, size_t(id) + 1);
    };
    for (auto& [tok, id] : model_.vocab()) check_id(tok, id);
    for (auto& a : added_) check_id(a.content, a.id);
    tokens_.resize(size);
    decoded_.resize(size);
    special_.assign(size, false);
    for (auto& [tok, id] : model_.vocab()) tokens_[id] = tok;
    for (size_t k = 0; k < added_.size(); ++k) {
      const auto& a = added_[k];
      tokens_[a.id] = a.content;
      special_[a.id] = a.special;
      if (a.normalized) {
        // `tokenizers` also reports (and decodes) a normalized added token in normalized form.
        std::string norm;
        if (normalizer_.apply(a.content, norm)) tokens_[a.id] = norm;
        normalized_matcher_.add(tokens_[a.id], int(k));
      } else {
        raw_matcher_.add(a.content, int(k));
      }
    }
    // Added tokens go through the decoder too (`tokenizers` does so): "ĠHi" decodes to " Hi".
    for (size_t id = 0; id < size; ++id)
      decoded_[id] = decoder_ == Spec::Decoder::ByteLevel ? byte_level_to_bytes(tokens_[id]) : tokens_[id];
  }

  std::vector<int32_t> encode(std::string_view text, bool add_special) const override {
    std::vector<int32_t> ids;
    ids.reserve(text.size() / 3 + 4);
    encode_into(text, add_special, ids);
    return ids;
  }

  void encode_into(std::string_view text, bool add_special, std::vector<int32_t>& out) const override {
    if (!is_valid_utf8(text)) throw DataError("encode: text is not valid UTF-8");
    if (add_special) out.insert(out.end(), prefix_.begin(), prefix_.end());
    split_added(raw_matcher_, text, out, [&](std::string_view seg) { encode_normalizing(seg, out); });
    if (add_special) out.insert(out.end(), suffix_.begin(), suffix_.end());
  }

  std::string decode(const std::vector<int32_t>& ids, bool skip_special) const override {
    std::string bytes;
    if (decoder_ == Spec::Decoder::Join) {
      for (int32_t id : ids) {
        if (!is_valid_id(id) || (skip_special && special_[id]) || tokens_[id].empty()) continue;
        if (!bytes.empty()) bytes += ' ';
        bytes += tokens_[id];
      }
      return bytes;
    }
    for (int32_t id : ids) {
      if (!is_valid_id(id) || (skip_special && special_[id])) continue;
      bytes += decoded_[id];
    }
    return utf8_lossy(bytes);
  }

  size_t vocab_size() const override { return tokens_.size(); }
  std::string id_to_token(int32_t id) const override { return is_valid_id(id) ? tokens_[id] : std::string(); }
  int32_t token_to_id(std::string_view token) const override {
    for (const auto& a : added_)
      if (a.content == token) return a.id;
    return model_.lookup(token);
  }
  bool is_special(int32_t id) const override { return is_valid_id(id) && special_[id]; }
  std::vector<int32_t> special_ids() const override {
    std::vector<int32_t> ids;
    for (const auto& a : added_)
      if (a.special) ids.push_back(a.id);
    return ids;
  }
  void set_special_ids(int32_t bos, int32_t eos, int32_t pad) { bos_id_ = bos, eos_id_ = eos, pad_id_ = pad; }

 private:
  // Cuts added tokens out of `text`: their ids go to `out`, the text between goes to `rest`.
  template <class Rest>
  void split_added(const TokenMatcher& matcher, std::string_view text, std::vector<int32_t>& out,
                   Rest&& rest) const {
    if (matcher.empty()) {
      if (!text.empty()) rest(text);
      return;
    }
    size_t from = 0, start_offset = 0, b, e;
    int index;
    while (matcher.find(text, from, b, e, index)) {
      from = e;
      const AddedToken& tok = added_[index];
      size_t start = b, stop = e;
      if (tok.single_word) {
        bool start_ok = !word_char_before(text, start);
        bool stop_ok = !word_char_at(text, stop);
        if (!start_ok || !stop_ok) continue;
      }
      if (tok.lstrip) {
        start = std::max(skip_spaces_left(text, start), start_offset);
      }
      if (tok.rstrip) stop = skip_spaces_right(text, stop);
      if (start_offset < start) rest(text.substr(start_offset, start - start_offset));
      out.push_back(tok.id);
      start_offset = stop;
      from = std::max(from, stop);
    }
    if (start_offset < text.size()) rest(text.substr(start_offset));
  }

  void encode_normalizing(std::string_view segment, std::vector<int32_t>& out) const {
    std::string normalized;
    std::string_view text = normalizer_.apply(segment, normalized) ? std::string_view(normalized) : segment;
    split_added(normalized_matcher_, text, out, [&](std::string_view seg) { encode_pretokenized(seg, out); });
  }

  void encode_pretokenized(std::string_view text, std::vector<int32_t>& out) const {
    thread_local std::vector<std::string_view> a, b;
    a.clear();
    a.push_back(text);
    for (const auto& step : splits_) {
      b.clear();
      for (auto piece : a) split_by(*step.regex, step.behavior, step.invert, piece, b);
      std::swap(a, b);
    }
    for (auto piece : a) emit(piece, out);  // emit() never touches a/b
  }

  void emit(std::string_view piece, std::vector<int32_t>& out) const {
    if (piece.empty()) return;
    if (!byte_level_) return encode_word(piece, out);
    std::string prefixed;
    if (prefix_space_ && piece.front() != ' ') {
      prefixed.reserve(piece.size() + 1);
      prefixed += ' ';
      prefixed += piece;
      piece = prefixed;
    }
    if (!gpt2_regex_) return encode_word(piece, out);
    thread_local std::vector<std::string_view> subs;
    subs.clear();
    split_by(*gpt2_regex_, Behavior::Isolated, false, piece, subs);
    for (auto w : subs) encode_word(w, out);
  }

  // One pre-token (raw bytes). Byte-level tokenizers map bytes to their alphabet first.
  void encode_word(std::string_view word, std::vector<int32_t>& out) const {
    if (cache_.lookup(word, out)) return;
    size_t start = out.size();
    if (byte_level_) {
      thread_local std::string mapped;
      mapped.clear();
      const auto& alphabet = byte_alphabet();
      for (unsigned char c : word) mapped += alphabet.byte_to_utf8[c];
      model_.encode_word(mapped, out);
    } else {
      model_.encode_word(word, out);
    }
    if (word.size() <= 256) cache_.insert(word, out.data() + start, out.size() - start);
  }

  BpeModel model_;
  std::vector<AddedToken> added_;
  Normalizer normalizer_;
  std::vector<SplitStep> splits_;
  bool byte_level_, prefix_space_;
  std::unique_ptr<Regex> gpt2_regex_;
  std::vector<int32_t> prefix_, suffix_;
  Spec::Decoder decoder_;
  TokenMatcher raw_matcher_, normalized_matcher_;
  std::vector<std::string> tokens_, decoded_;
  std::vector<bool> special_;
  mutable WordCache cache_;
};

// ---- tokenizer.json parsing -------------------------------------------------------------------
const Json* member(const Json& obj, const char* name) {
  if (!obj.IsObject()) return nullptr;
  auto it = obj.FindMember(name);
  return it == obj.MemberEnd() || it->value.IsNull() ? nullptr : &it->value;
}
std::string get_string(const Json& obj, const char* name, const std::string& where) {
  const Json* v = member(obj, name);
  if (!v || !v->IsString()) throw DataError(str(where, ": field '", name, "' must be a string"));
  return std::string(v->GetString(), v->GetStringLength());
}
bool get_bool(const Json& obj, const char* name, bool fallback) {
  const Json* v = member(obj, name);
  return v && v->IsBool() ? v->GetBool() : fallback;
}

void parse_normalizer(const Json& n, Normalizer& out, const std::string& where) {
  std::string type = get_string(n, "type", where);
  if (type == "NFC") out.steps.push_back(NormKind::NFC);
  else if (type == "NFD") out.steps.push_back(NormKind::NFD);
  else if (type == "NFKC") out.steps.push_back(NormKind::NFKC);
  else if (type == "NFKD") out.steps.push_back(NormKind::NFKD);
  else if (type == "Lowercase") out.steps.push_back(NormKind::Lowercase);
  else if (type == "Sequence") {
    const Json* list = member(n, "normalizers");
    if (!list || !list->IsArray()) throw DataError(str(where, ": Sequence normalizer needs 'normalizers'"));
    for (const auto& item : list->GetArray()) parse_normalizer(item, out, where);
  } else {
    throw UsageError(str(where, ": unsupported normalizer '", type, "' (supported: NFC, NFD, NFKC, NFKD, Lowercase, Sequence)"));
  }
}

Behavior parse_behavior(const std::string& behavior, const std::string& where) {
  static const std::pair<const char*, Behavior> names[] = {
      {"Removed", Behavior::Removed}, {"Isolated", Behavior::Isolated},
      {"MergedWithPrevious", Behavior::MergedWithPrevious}, {"MergedWithNext", Behavior::MergedWithNext},
      {"Contiguous", Behavior::Contiguous}};
  auto it = std::find_if(std::begin(names), std::end(names), [&](auto& n) { return behavior == n.first; });
  if (it == std::end(names)) throw UsageError(str(where, ": unknown split behavior '", behavior, "'"));
  return it->second;
}

void parse_pre_tokenizer(const Json& p, Spec& spec, const std::string& where) {
  std::string type = get_string(p, "type", where);
  if (spec.byte_level) throw UsageError(str(where, ": a pre-tokenizer after ByteLevel is not supported"));
  if (type == "Sequence") {
    const Json* list = member(p, "pretokenizers");
    if (!list || !list->IsArray()) throw DataError(str(where, ": Sequence pre-tokenizer needs 'pretokenizers'"));
    for (const auto& item : list->GetArray()) parse_pre_tokenizer(item, spec, where);
  } else if (type == "Split") {
    SplitStep step;
    const Json* pattern = member(p, "pattern");
    if (!pattern) throw DataError(str(where, ": Split pre-tokenizer needs 'pattern'"));
    if (member(*pattern, "Regex")) step.regex = std::make_unique<Regex>(get_string(*pattern, "Regex", where), false, where);
    else step.regex = std::make_unique<Regex>(get_string(*pattern, "String", where), true, where);
    step.behavior = parse_behavior(get_string(p, "behavior", where), where);
    step.invert = get_bool(p, "invert", false);
    spec.splits.push_back(std::move(step));
  } else if (type == "Digits") {  // char::is_numeric, one match per character
    SplitStep step;
    step.regex = std::make_unique<Regex>("\\p{N}", false, where);
    step.behavior = get_bool(p, "individual_digits", false) ? Behavior::Isolated : Behavior::Contiguous;
    spec.splits.push_back(std::move(step));
  } else if (type == "Punctuation") {  // ASCII or Unicode punctuation, one match per character
    SplitStep step;
    step.regex = std::make_unique<Regex>("[\\p{P}!-/:-@\\[-`{-~]", false, where);
    step.behavior = member(p, "behavior") ? parse_behavior(get_string(p, "behavior", where), where) : Behavior::Isolated;
    spec.splits.push_back(std::move(step));
  } else if (type == "ByteLevel") {
    spec.byte_level = true;
    spec.byte_level_prefix_space = get_bool(p, "add_prefix_space", true);
    spec.byte_level_regex = get_bool(p, "use_regex", true);
  } else {
    throw UsageError(str(where, ": unsupported pre-tokenizer '", type, "' (supported: Split, Digits, Punctuation, ByteLevel, Sequence)"));
  }
}

std::vector<int32_t> special_ids_of(const Json& specials, const std::string& name, const std::string& where) {
  const Json* entry = member(specials, name.c_str());
  const Json* ids = entry ? member(*entry, "ids") : nullptr;
  if (!ids || !ids->IsArray()) throw DataError(str(where, ": TemplateProcessing special token '", name, "' has no ids"));
  std::vector<int32_t> out;
  for (const auto& v : ids->GetArray()) out.push_back(v.GetInt());
  return out;
}

void parse_post_processor(const Json& p, Spec& spec, const std::string& where) {
  std::string type = get_string(p, "type", where);
  if (type == "ByteLevel") return;  // offsets only
  if (type == "Sequence") {
    const Json* list = member(p, "processors");
    if (list && list->IsArray())
      for (const auto& item : list->GetArray()) parse_post_processor(item, spec, where);
    return;
  }
  if (type == "TemplateProcessing") {
    const Json* single = member(p, "single");
    const Json* specials = member(p, "special_tokens");
    if (!single || !single->IsArray() || !specials) throw DataError(str(where, ": TemplateProcessing needs 'single'"));
    bool seen_sequence = false;
    for (const auto& item : single->GetArray()) {
      if (member(item, "Sequence")) {
        seen_sequence = true;
        continue;
      }
      const Json* tok = member(item, "SpecialToken");
      if (!tok) throw DataError(str(where, ": TemplateProcessing item is neither Sequence nor SpecialToken"));
      auto ids = special_ids_of(*specials, get_string(*tok, "id", where), where);
      auto& dst = seen_sequence ? spec.suffix : spec.prefix;
      dst.insert(dst.end(), ids.begin(), ids.end());
    }
    return;
  }
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    const Json* cls = member(p, "cls");
    const Json* sep = member(p, "sep");
    if (!cls || !sep || !cls->IsArray() || !sep->IsArray() || cls->Size() != 2 || sep->Size() != 2)
      throw DataError(str(where, ": ", type, " needs cls and sep"));
    spec.prefix.push_back((*cls)[1].GetInt());
    spec.suffix.push_back((*sep)[1].GetInt());
    return;
  }
  throw UsageError(str(where, ": unsupported post-processor '", type, "' (supported: ByteLevel, TemplateProcessing, RobertaProcessing, BertProcessing, Sequence)"));
}

void parse_decoder(const Json& d, Spec& spec, const std::string& where) {
  std::string type = get_string(d, "type", where);
  if (type == "ByteLevel") {
    spec.decoder = Spec::Decoder::ByteLevel;
  } else if (type == "Sequence" && member(d, "decoders") && (*member(d, "decoders")).IsArray() &&
             (*member(d, "decoders")).Size() == 1) {
    parse_decoder((*member(d, "decoders"))[0], spec, where);
  } else {
    throw UsageError(str(where, ": unsupported decoder '", type, "' (supported: ByteLevel)"));
  }
}

void parse_model(const Json& m, Spec& spec, const std::string& where) {
  std::string type = member(m, "type") ? get_string(m, "type", where) : "BPE";
  if (type != "BPE") throw UsageError(str(where, ": unsupported model '", type, "' (supported: BPE)"));
  const Json* vocab = member(m, "vocab");
  const Json* merges = member(m, "merges");
  if (!vocab || !vocab->IsObject()) throw DataError(str(where, ": model.vocab must be an object"));
  spec.vocab.reserve(vocab->MemberCount());
  for (const auto& kv : vocab->GetObject()) {
    if (!kv.value.IsInt()) throw DataError(str(where, ": model.vocab['", kv.name.GetString(), "'] is not an integer"));
    spec.vocab.emplace(std::string(kv.name.GetString(), kv.name.GetStringLength()), kv.value.GetInt());
  }
  if (merges) {
    if (!merges->IsArray()) throw DataError(str(where, ": model.merges must be an array"));
    spec.merges.reserve(merges->Size());
    for (const auto& item : merges->GetArray()) {
      if (item.IsString()) {  // "a b"
        std::string_view s(item.GetString(), item.GetStringLength());
        size_t space = s.find(' ');
        if (space == std::string_view::npos || s.find(' ', space + 1) != std::string_view::npos)
          throw DataError(str(where, ": merge '", s, "' is not two tokens separated by a space"));
        spec.merges.emplace_back(std::string(s.substr(0, space)), std::string(s.substr(space + 1)));
      } else if (item.IsArray() && item.Size() == 2 && item[0].IsString() && item[1].IsString()) {  // ["a", "b"]
        spec.merges.emplace_back(std::string(item[0].GetString(), item[0].GetStringLength()),
                                 std::string(item[1].GetString(), item[1].GetStringLength()));
      } else {
        throw DataError(str(where, ": merge #", spec.merges.size(), " is neither \"a b\" nor [\"a\", \"b\"]"));
      }
    }
  }
  if (const Json* unk = member(m, "unk_token")) {
    auto it = spec.vocab.find(std::string_view(unk->GetString(), unk->GetStringLength()));
    if (it != spec.vocab.end()) spec.bpe.unk_id = it->second;
  }
  spec.bpe.fuse_unk = get_bool(m, "fuse_unk", false);
  spec.bpe.byte_fallback = get_bool(m, "byte_fallback", false);
  spec.bpe.ignore_merges = get_bool(m, "ignore_merges", false);
  if (const Json* v = member(m, "continuing_subword_prefix"); v && v->IsString()) spec.bpe.continuing_subword_prefix = v->GetString();
  if (const Json* v = member(m, "end_of_word_suffix"); v && v->IsString()) spec.bpe.end_of_word_suffix = v->GetString();
  if (member(m, "dropout") && member(m, "dropout")->IsNumber() && member(m, "dropout")->GetDouble() > 0)
    throw UsageError(str(where, ": BPE dropout is not supported"));
}

// tokenizer_config.json's bos/eos/pad entries are a string, {"content": ...} or null.
int32_t config_token_id(const Json& cfg, const char* name, const Tokenizer& tok) {
  const Json* v = member(cfg, name);
  if (!v) return -1;
  if (v->IsObject()) v = member(*v, "content");
  if (!v || !v->IsString()) return -1;
  return tok.token_to_id(std::string_view(v->GetString(), v->GetStringLength()));
}

}  // namespace

std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& json_path) {
  std::string text = read_file(json_path);
  rapidjson::Document doc = parse_json(text, json_path);
  Spec spec;
  spec.where = json_path;
  spec.kind = "hf-bpe";
  const Json* model = member(doc, "model");
  if (!model) throw DataError(str(json_path, ": no 'model' field: not a tokenizer.json"));
  parse_model(*model, spec, json_path);
  if (const Json* n = member(doc, "normalizer")) parse_normalizer(*n, spec.normalizer, json_path);
  if (const Json* p = member(doc, "pre_tokenizer")) parse_pre_tokenizer(*p, spec, json_path);
  if (const Json* p = member(doc, "post_processor")) parse_post_processor(*p, spec, json_path);
  if (const Json* d = member(doc, "decoder")) parse_decoder(*d, spec, json_path);
  if (const Json* added = member(doc, "added_tokens"); added && added->IsArray()) {
    for (const auto& a : added->GetArray()) {
      AddedToken t;
      t.content = get_string(a, "content", json_path);
      if (!member(a, "id") || !a["id"].IsInt()) throw DataError(str(json_path, ": added token '", t.content, "' has no id"));
      t.id = a["id"].GetInt();
      t.special = get_bool(a, "special", false);
      t.lstrip = get_bool(a, "lstrip", false);
      t.rstrip = get_bool(a, "rstrip", false);
      t.single_word = get_bool(a, "single_word", false);
      t.normalized = get_bool(a, "normalized", !t.special);
      spec.added.push_back(std::move(t));
    }
  }
  doc = rapidjson::Document();
  text.clear();
  text.shrink_to_fit();
  auto tok = std::make_unique<HfTokenizer>(std::move(spec));
  fs::path config = fs::path(json_path).parent_path() / "tokenizer_config.json";
  if (fs::exists(config)) {
    std::string ctext = read_file(config.string());
    rapidjson::Document cfg = parse_json(ctext, config.string());
    tok->set_special_ids(config_token_id(cfg, "bos_token", *tok), config_token_id(cfg, "eos_token", *tok),
                         config_token_id(cfg, "pad_token", *tok));
  }
  return tok;
}

std::unique_ptr<Tokenizer> load_gpt2_tokenizer(const std::string& encoder_json, const std::string& vocab_bpe) {
  Spec spec;
  spec.where = vocab_bpe;
  spec.kind = "gpt2";
  {
    std::string text = read_file(encoder_json);
    rapidjson::Document doc = parse_json(text, encoder_json);
    if (!doc.IsObject()) throw DataError(str(encoder_json, ": expected an object token -> id"));
    for (const auto& kv : doc.GetObject()) {
      if (!kv.value.IsInt()) throw DataError(str(encoder_json, ": id of '", kv.name.GetString(), "' is not an integer"));
      spec.vocab.emplace(std::string(kv.name.GetString(), kv.name.GetStringLength()), kv.value.GetInt());
    }
  }
  std::string merges = read_file(vocab_bpe);
  size_t line_no = 0;
  for (const auto& raw : split(merges, '\n')) {
    ++line_no;
    std::string_view line = raw;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || starts_with(line, "#version")) continue;
    size_t space = line.find(' ');
    if (space == std::string_view::npos)
      throw DataError(str(vocab_bpe, ":", line_no, ": expected two tokens separated by a space"));
    spec.merges.emplace_back(std::string(line.substr(0, space)), std::string(line.substr(space + 1)));
  }
  spec.byte_level = true;
  spec.byte_level_prefix_space = false;
  spec.byte_level_regex = true;
  spec.decoder = Spec::Decoder::ByteLevel;
  int32_t eot = -1;
  if (auto it = spec.vocab.find(std::string_view("<|endoftext|>")); it != spec.vocab.end()) {
    eot = it->second;
    spec.added.push_back({"<|endoftext|>", eot, true, false, false, false, false});
  }
  auto tok = std::make_unique<HfTokenizer>(std::move(spec));
  tok->set_special_ids(eot, eot, -1);
  return tok;
}

}  // namespace mathrl
