// Tokenizers: one interface over Hugging Face tokenizer.json (byte-level BPE), GPT-2's
// encoder.json + vocab.bpe, and SentencePiece .model files. Output matches the reference Python
// libraries (`tokenizers`, `sentencepiece`) id for id; tests/tokenizer checks it on real files.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace mathrl {

// All methods are const and safe to call from several threads at once (the BPE word cache is
// internally locked).
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Special/added tokens written in `text` are recognized as the reference library does.
  // add_special applies the post-processor (e.g. a BOS token); without it only the text's tokens.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special = false) const = 0;
  // Appends to `out` (lets callers batch without reallocating).
  virtual void encode_into(std::string_view text, bool add_special, std::vector<int32_t>& out) const = 0;
  // Invalid UTF-8 produced by partial byte tokens becomes U+FFFD, as the references do.
  // Ids out of range are skipped (use is_valid_id() to check first).
  virtual std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const = 0;

  virtual size_t vocab_size() const = 0;  // one past the largest id
  virtual std::string id_to_token(int32_t id) const = 0;  // "" when unknown
  virtual int32_t token_to_id(std::string_view token) const = 0;  // -1 when unknown
  virtual bool is_special(int32_t id) const = 0;
  virtual std::vector<int32_t> special_ids() const = 0;
  bool is_valid_id(int32_t id) const { return id >= 0 && static_cast<size_t>(id) < vocab_size(); }

  int32_t bos_id() const { return bos_id_; }  // -1 when the tokenizer has none
  int32_t eos_id() const { return eos_id_; }
  int32_t pad_id() const { return pad_id_; }
  const std::string& kind() const { return kind_; }  // "hf-bpe", "gpt2", "sentencepiece"

 protected:
  int32_t bos_id_ = -1, eos_id_ = -1, pad_id_ = -1;
  std::string kind_;
};

// Accepts: a tokenizer.json file or a directory holding one; a SentencePiece .model file or a
// directory holding tokenizer.model; a GPT-2 directory with encoder.json + vocab.bpe.
// Throws UsageError when nothing loadable is there, DataError when a file is malformed.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

// Trains a SentencePiece vocabulary (BPE by default) for from-scratch models.
struct TrainOptions {
  std::vector<std::string> input_files;  // plain text, one sentence per line
  std::vector<std::string> sentences;    // or in memory (used when input_files is empty)
  std::string model_prefix;              // writes <prefix>.model and <prefix>.vocab
  int vocab_size = 8000;
  std::string model_type = "bpe";        // bpe | unigram | char | word
  bool split_digits = true;              // every digit its own token (DeepSeekMath does this)
  bool byte_fallback = true;             // unknown characters become <0x..> byte tokens
  std::vector<std::string> user_defined_symbols;  // always single tokens, recognized in text
  double character_coverage = 0.9995;
  int max_sentence_length = 16384;
  int num_threads = 1;
  long long input_sentence_size = 0;     // 0 = use every sentence
  bool quiet = true;                     // silence sentencepiece's training log
};
// Returns the path of the written .model file. Throws UsageError for bad options, Error on failure.
std::string train_sentencepiece(const TrainOptions& options);

// Byte string -> valid UTF-8, replacing each maximal invalid subsequence by U+FFFD (like Rust's
// String::from_utf8_lossy, which the `tokenizers` decoder uses).
std::string utf8_lossy(std::string_view bytes);

namespace cli {
class Args;
int run_tokenize(const Args& args);  // `mathrl tokenize` (tokenize_cli.cpp)
}  // namespace cli

}  // namespace mathrl
