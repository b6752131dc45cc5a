// Hugging Face checkpoint layout: config.json + model.safetensors, or shards listed in
// model.safetensors.index.json. Loading memory-maps the files and converts each tensor straight
// into the parameter (dtype conversion included); saving writes what transformers loads.
#pragma once
#include <string>

#include "model/transformer.h"

namespace mathrl::model {

at::ScalarType parse_dtype(const std::string& name);  // float32|fp32, bfloat16|bf16, float16|fp16
std::string dtype_name(at::ScalarType t);             // "float32", "bfloat16", "float16"

// Throws DataError naming the file and tensor: missing or unexpected tensors, shape mismatch,
// truncated files, headers that lie.
Decoder load_decoder(const std::string& dir, at::ScalarType dtype = at::kFloat, at::Device device = at::kCPU);

// Loads safetensors weights into an existing decoder (names must match its parameters).
void load_weights(Decoder& decoder, const std::string& dir);

// Writes config.json and the weights in `dtype` (shards of at most `max_shard_bytes`, with an index,
// when larger). Files are written under temporary names and renamed into place.
void save_decoder(Decoder& decoder, const std::string& dir, at::ScalarType dtype = at::kFloat,
                  size_t max_shard_bytes = size_t(4) << 30);

// Copies a tokenizer's files (a tokenizer.json / .model file, or the known files of a directory)
// beside a saved model, so the model directory is self-contained for transformers and mathrl.
void copy_tokenizer_files(const std::string& tokenizer_path, const std::string& dir);

}  // namespace mathrl::model
