// SentencePiece .model files via libsentencepiece (encode/decode match the Python package).
#pragma once
#include <memory>
#include <string>

#include "tokenizer/tokenizer.h"

namespace mathrl {
std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& model_path);
}
