// SentencePiece models (load and train) through libsentencepiece.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <filesystem>

#include "common/error.h"
#include "common/strings.h"
#include "tokenizer/sp_tokenizer.h"

namespace mathrl {
namespace {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::string& path) {
    auto status = sp_.Load(path);
    if (!status.ok()) throw DataError(str(path, ": cannot load SentencePiece model: ", status.ToString()));
    kind_ = "sentencepiece";
    bos_id_ = sp_.bos_id();
    eos_id_ = sp_.eos_id();
    pad_id_ = sp_.pad_id();
  }

  std::vector<int32_t> encode(std::string_view text, bool add_special) const override {
    std::vector<int32_t> ids;
    encode_into(text, add_special, ids);
    return ids;
  }

  // add_special prepends BOS (Llama's convention; sentencepiece's add_bos).
  void encode_into(std::string_view text, bool add_special, std::vector<int32_t>& out) const override {
    if (!is_valid_utf8(text)) throw DataError("encode: text is not valid UTF-8");
    std::vector<int> ids;
    auto status = sp_.Encode(absl::string_view(text.data(), text.size()), &ids);
    if (!status.ok()) throw Error(str("sentencepiece encode failed: ", status.ToString()));
    if (add_special && bos_id_ >= 0) out.push_back(bos_id_);
    out.insert(out.end(), ids.begin(), ids.end());
  }

  std::string decode(const std::vector<int32_t>& ids, bool skip_special) const override {
    std::vector<int> kept;
    kept.reserve(ids.size());
    for (int32_t id : ids)
      if (is_valid_id(id) && !(skip_special && is_special(id))) kept.push_back(id);
    std::string text;
    auto status = sp_.Decode(kept, &text);
    if (!status.ok()) throw Error(str("sentencepiece decode failed: ", status.ToString()));
    return text;
  }

  size_t vocab_size() const override { return size_t(sp_.GetPieceSize()); }
  std::string id_to_token(int32_t id) const override { return is_valid_id(id) ? sp_.IdToPiece(id) : std::string(); }
  int32_t token_to_id(std::string_view token) const override {
    int id = sp_.PieceToId(absl::string_view(token.data(), token.size()));
    return is_valid_id(id) && sp_.IdToPiece(id) == token ? id : -1;
  }
  bool is_special(int32_t id) const override { return is_valid_id(id) && sp_.IsControl(id); }
  std::vector<int32_t> special_ids() const override {
    std::vector<int32_t> ids;
    for (int32_t id = 0; id < int32_t(vocab_size()); ++id)
      if (sp_.IsControl(id)) ids.push_back(id);
    return ids;
  }

 private:
  sentencepiece::SentencePieceProcessor sp_;
};

class VectorIterator : public sentencepiece::SentenceIterator {
 public:
  explicit VectorIterator(const std::vector<std::string>& s) : s_(s) {}
  bool done() const override { return i_ >= s_.size(); }
  void Next() override { ++i_; }
  const std::string& value() const override { return s_[i_]; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  const std::vector<std::string>& s_;
  size_t i_ = 0;
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& model_path) {
  return std::make_unique<SentencePieceTokenizer>(model_path);
}

std::string train_sentencepiece(const TrainOptions& o) {
  if (o.model_prefix.empty()) throw UsageError("bad argument to 'train_sentencepiece' (model_prefix is empty)");
  if (o.input_files.empty() && o.sentences.empty())
    throw UsageError("bad argument to 'train_sentencepiece' (no input_files and no sentences)");
  if (o.vocab_size < 8) throw UsageError(str("bad argument to 'train_sentencepiece' (vocab_size ", o.vocab_size, " too small)"));
  static const std::vector<std::string> types = {"bpe", "unigram", "char", "word"};
  if (std::find(types.begin(), types.end(), o.model_type) == types.end())
    throw UsageError(str("bad argument to 'train_sentencepiece' (model_type '", o.model_type, "'", did_you_mean(o.model_type, types), ")"));
  for (const auto& f : o.input_files)
    if (!std::filesystem::exists(f)) throw UsageError(str("train_sentencepiece: input file '", f, "' does not exist"));
  for (const auto& s : o.user_defined_symbols)
    if (s.find(',') != std::string::npos)
      throw UsageError(str("train_sentencepiece: user-defined symbol '", s, "' contains a comma (not supported)"));

  std::unordered_map<std::string, std::string> args = {
      {"model_prefix", o.model_prefix},
      {"vocab_size", std::to_string(o.vocab_size)},
      {"model_type", o.model_type},
      {"split_digits", o.split_digits ? "true" : "false"},
      {"byte_fallback", o.byte_fallback ? "true" : "false"},
      {"character_coverage", std::to_string(o.character_coverage)},
      {"max_sentence_length", std::to_string(o.max_sentence_length)},
      {"num_threads", std::to_string(std::max(1, o.num_threads))},
      {"input_sentence_size", std::to_string(o.input_sentence_size)},
      {"shuffle_input_sentence", "true"},
      // Keep text as written: math needs exact digits, spacing and symbols (no NFKC folding).
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"allow_whitespace_only_pieces", "true"},
      {"hard_vocab_limit", "false"},
      {"minloglevel", o.quiet ? "2" : "0"},
  };
  std::string symbols;
  for (const auto& s : o.user_defined_symbols) symbols += (symbols.empty() ? "" : ",") + s;
  if (!symbols.empty()) args["user_defined_symbols"] = symbols;
  std::string files;
  for (const auto& f : o.input_files) files += (files.empty() ? "" : ",") + f;
  sentencepiece::util::Status status;
  if (!files.empty()) {
    args["input"] = files;
    status = sentencepiece::SentencePieceTrainer::Train(args);
  } else {
    VectorIterator it(o.sentences);
    status = sentencepiece::SentencePieceTrainer::Train(args, &it);
  }
  if (!status.ok()) throw Error(str("sentencepiece training failed: ", status.ToString()));
  return o.model_prefix + ".model";
}

}  // namespace mathrl
