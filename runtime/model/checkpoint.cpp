#include "model/checkpoint.h"

#include <filesystem>
#include <map>
#include <set>

#include <rapidjson/document.h>

#include "common/error.h"
#include "common/jsonl.h"
#include "common/strings.h"
#include "model/safetensors.h"

namespace mathrl::model {

namespace fs = std::filesystem;

at::ScalarType parse_dtype(const std::string& name) {
  if (name == "float32" || name == "fp32") return at::kFloat;
  if (name == "bfloat16" || name == "bf16") return at::kBFloat16;
  if (name == "float16" || name == "fp16" || name == "half") return at::kHalf;
  throw UsageError(str("unknown dtype '", name, "' (expected float32, bfloat16 or float16)",
                       did_you_mean(name, {"float32", "bfloat16", "float16"})));
}

std::string dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "float32";
    case at::kBFloat16: return "bfloat16";
    case at::kHalf: return "float16";
    default: return str(t);
  }
}

namespace {

at::ScalarType file_dtype(const std::string& d, const std::string& where) {
  if (d == "F32") return at::kFloat;
  if (d == "BF16") return at::kBFloat16;
  if (d == "F16") return at::kHalf;
  if (d == "F64") return at::kDouble;
  throw DataError(str(where, ": dtype ", d, " cannot hold model weights"));
}

const char* safetensors_dtype(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "F32";
    case at::kBFloat16: return "BF16";
    case at::kHalf: return "F16";
    default: MATHRL_CHECK(false, "cannot save dtype ", t);
  }
  return "";
}

std::vector<std::string> weight_files(const std::string& dir) {
  std::string single = dir + "/model.safetensors", index = dir + "/model.safetensors.index.json";
  if (fs::exists(single)) return {single};
  if (!fs::exists(index)) throw DataError(str(dir, ": no model.safetensors or model.safetensors.index.json"));
  rapidjson::Document d = parse_json(read_file(index), index);
  auto wm = d.IsObject() ? d.FindMember("weight_map") : d.MemberEnd();
  if (wm == d.MemberEnd() || !wm->value.IsObject()) throw DataError(str(index, ": missing weight_map"));
  std::set<std::string> files;
  for (auto it = wm->value.MemberBegin(); it != wm->value.MemberEnd(); ++it) {
    if (!it->value.IsString()) throw DataError(str(index, ": weight_map values must be file names"));
    std::string f = it->value.GetString();
    if (f.find('/') != std::string::npos) throw DataError(str(index, ": shard name '", f, "' must be a plain file name"));
    files.insert(dir + "/" + f);
  }
  return {files.begin(), files.end()};
}

}  // namespace

void load_weights(Decoder& decoder, const std::string& dir) {
  std::vector<std::unique_ptr<MappedSafetensors>> maps;
  std::map<std::string, std::pair<const MappedSafetensors*, const TensorEntry*>> entries;
  for (const auto& f : weight_files(dir)) {
    maps.push_back(std::make_unique<MappedSafetensors>(f));
    for (const auto& t : maps.back()->header().tensors) entries[t.name] = {maps.back().get(), &t};
  }
  torch::NoGradGuard no_grad;
  std::set<std::string> used;
  for (auto& p : decoder->named_parameters()) {
    auto it = entries.find(p.key());
    if (it == entries.end()) {
      if (p.key() == "score.weight") continue;  // a value head added on top of a plain LM
      throw DataError(str(dir, ": missing tensor '", p.key(), "'"));
    }
    const auto& [file, entry] = it->second;
    std::string where = str(file->path(), ": tensor '", p.key(), "'");
    std::vector<int64_t> want(p.value().sizes().begin(), p.value().sizes().end());
    if (entry->shape != want)
      throw DataError(str(where, ": shape ", c10::IntArrayRef(entry->shape), " does not match the model's ", p.value().sizes()));
    at::Tensor src = at::from_blob(const_cast<uint8_t*>(file->data(*entry)), entry->shape,
                                   at::TensorOptions().dtype(file_dtype(entry->dtype, where)));
    p.value().copy_(src);
    used.insert(p.key());
  }
  for (const auto& [name, e] : entries) {
    if (used.count(name)) continue;
    // Tied checkpoints sometimes still carry lm_head.weight; rotary caches are recomputed.
    if ((name == "lm_head.weight" && decoder->config().tie_word_embeddings) || ends_with(name, "rotary_emb.inv_freq"))
      continue;
    throw DataError(str(e.first->path(), ": unexpected tensor '", name, "' (not a parameter of this model)"));
  }
}

Decoder load_decoder(const std::string& dir, at::ScalarType dtype, at::Device device) {
  if (!fs::is_directory(dir)) throw UsageError(str(dir, ": not a model directory"));
  ModelConfig config = load_config(dir + "/config.json");
  Decoder d(config);
  load_weights(d, dir);
  d->to(device, dtype);
  d->eval();
  return d;
}

void save_decoder(Decoder& decoder, const std::string& dir, at::ScalarType dtype, size_t max_shard_bytes) {
  fs::create_directories(dir);
  ModelConfig config = decoder->config();
  config.dtype = dtype_name(dtype);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (auto& p : decoder->named_parameters()) tensors.emplace_back(p.key(), p.value().detach().to(at::kCPU, dtype).contiguous());
  std::vector<std::vector<size_t>> shards(1);
  size_t current = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    size_t n = tensors[i].second.nbytes();
    if (current > 0 && current + n > max_shard_bytes) shards.emplace_back(), current = 0;
    shards.back().push_back(i);
    current += n;
  }
  auto to_bytes = [&](size_t i) {
    const auto& [name, t] = tensors[i];
    return TensorBytes{name, safetensors_dtype(dtype), std::vector<int64_t>(t.sizes().begin(), t.sizes().end()),
                       t.data_ptr(), t.nbytes()};
  };
  if (shards.size() == 1) {
    std::vector<TensorBytes> all;
    for (size_t i : shards[0]) all.push_back(to_bytes(i));
    write_safetensors(dir + "/model.safetensors", all);
    fs::remove(dir + "/model.safetensors.index.json");
  } else {
    std::string index = "{\n  \"metadata\": {\"total_size\": ";
    size_t total = 0;
    for (auto& [n, t] : tensors) total += t.nbytes();
    index += str(total, "},\n  \"weight_map\": {");
    for (size_t s = 0; s < shards.size(); ++s) {
      char name[64];
      std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
      std::vector<TensorBytes> part;
      for (size_t i : shards[s]) {
        part.push_back(to_bytes(i));
        index += str(index.back() == '{' ? "\n    " : ",\n    ", "\"", tensors[i].first, "\": \"", name, "\"");
      }
      write_safetensors(dir + "/" + name, part);
    }
    index += "\n  }\n}\n";
    write_file_atomic(dir + "/model.safetensors.index.json", index);
    fs::remove(dir + "/model.safetensors");
  }
  write_file_atomic(dir + "/config.json", config_to_json(config));
}

void copy_tokenizer_files(const std::string& tokenizer_path, const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  auto copy = [&](const fs::path& f, const std::string& as) {
    fs::copy_file(f, fs::path(dir) / as, fs::copy_options::overwrite_existing, ec);
  };
  fs::path p(tokenizer_path);
  if (fs::is_regular_file(p, ec)) {
    copy(p, p.extension() == ".model" ? "tokenizer.model" : p.extension() == ".json" ? "tokenizer.json" : p.filename().string());
    return;
  }
  for (const char* name : {"tokenizer.json", "tokenizer.model", "tokenizer_config.json", "encoder.json", "vocab.bpe"})
    if (fs::exists(p / name, ec)) copy(p / name, name);
}

}  // namespace mathrl::model
