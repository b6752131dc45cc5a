// Hugging Face tokenizer.json (BPE model) and GPT-2 (encoder.json + vocab.bpe) loaders.
// Supported tokenizer.json components (anything else is a UsageError naming it):
//   normalizer: NFC, NFD, NFKC, NFKD (utf8proc), Lowercase, Sequence
//   pre_tokenizer: Split (Regex via PCRE2 UTF+UCP+JIT, or String; all five behaviours; invert),
//                  Digits, Punctuation, ByteLevel (add_prefix_space, use_regex; must come last), Sequence
//   model: BPE (merges as "a b" or ["a", "b"], unk/fuse_unk, byte_fallback, ignore_merges,
//          continuing_subword_prefix, end_of_word_suffix; no dropout)
//   added_tokens: split out before normalization (normalized=false) or after it (normalized=true),
//                 honouring lstrip, rstrip and single_word
//   post_processor: ByteLevel, TemplateProcessing (single), RobertaProcessing, BertProcessing, Sequence
//   decoder: ByteLevel, or none (tokens joined by spaces)
#pragma once
#include <memory>
#include <string>

#include "tokenizer/tokenizer.h"

namespace mathrl {

// `json_path`: a tokenizer.json. A tokenizer_config.json beside it, when present, supplies the
// bos/eos/pad tokens (tokenizer.json itself does not name them).
std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& json_path);

// GPT-2 as `tokenizers`' ByteLevelBPETokenizer builds it from the two files, plus <|endoftext|>
// registered as a special token (as the Hugging Face gpt2 tokenizer does).
std::unique_ptr<Tokenizer> load_gpt2_tokenizer(const std::string& encoder_json, const std::string& vocab_bpe);

}  // namespace mathrl
