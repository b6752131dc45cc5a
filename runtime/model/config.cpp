#include "model/config.h"

#include <rapidjson/document.h>

#include "common/error.h"
#include "common/jsonl.h"
#include "common/strings.h"

namespace mathrl::model {

namespace {

int64_t get_int(const rapidjson::Value& o, const char* key, int64_t fallback, const std::string& where) {
  auto it = o.FindMember(key);
  if (it == o.MemberEnd() || it->value.IsNull()) return fallback;
  if (it->value.IsArray() && !it->value.Empty() && it->value[0].IsInt64()) return it->value[0].GetInt64();  // eos lists
  if (!it->value.IsInt64()) throw DataError(str(where, ": '", key, "' must be an integer"));
  return it->value.GetInt64();
}

double get_double(const rapidjson::Value& o, const char* key, double fallback, const std::string& where) {
  auto it = o.FindMember(key);
  if (it == o.MemberEnd() || it->value.IsNull()) return fallback;
  if (!it->value.IsNumber()) throw DataError(str(where, ": '", key, "' must be a number"));
  return it->value.GetDouble();
}

std::string get_string(const rapidjson::Value& o, const char* key, const std::string& fallback) {
  auto it = o.FindMember(key);
  return it != o.MemberEnd() && it->value.IsString() ? it->value.GetString() : fallback;
}

bool get_bool(const rapidjson::Value& o, const char* key, bool fallback) {
  auto it = o.FindMember(key);
  return it != o.MemberEnd() && it->value.IsBool() ? it->value.GetBool() : fallback;
}

}  // namespace

void ModelConfig::validate() const {
  auto positive = [](int64_t v, const char* name) {
    if (v <= 0) throw UsageError(str("model config: '", name, "' must be positive, got ", v));
  };
  positive(vocab_size, "vocab_size");
  positive(hidden_size, "hidden_size");
  positive(intermediate_size, "intermediate_size");
  positive(num_hidden_layers, "num_hidden_layers");
  positive(num_attention_heads, "num_attention_heads");
  positive(num_key_value_heads, "num_key_value_heads");
  positive(max_position_embeddings, "max_position_embeddings");
  if (num_attention_heads % num_key_value_heads != 0)
    throw UsageError(str("model config: num_attention_heads (", num_attention_heads,
                         ") must be a multiple of num_key_value_heads (", num_key_value_heads, ")"));
  if (head_dim <= 0 && hidden_size % num_attention_heads != 0)
    throw UsageError("model config: hidden_size must be a multiple of num_attention_heads (or set head_dim)");
  if (head_size() % 2 != 0) throw UsageError("model config: the head dimension must be even (rotary embeddings)");
  const std::vector<std::string> known = {"default", "linear", "llama3", "yarn"};
  bool ok = false;
  for (auto& k : known) ok = ok || k == rope_scaling.type;
  if (!ok) throw UsageError(str("model config: unsupported rope scaling '", rope_scaling.type, "'", did_you_mean(rope_scaling.type, known)));
}

int64_t ModelConfig::parameter_count() const {
  int64_t h = hidden_size, d = head_size();
  int64_t attn = h * num_attention_heads * d * 2 + h * num_key_value_heads * d * 2;
  if (attention_bias) attn += num_attention_heads * d + 2 * num_key_value_heads * d;
  int64_t layer = attn + 3 * h * intermediate_size + 2 * h;
  return vocab_size * h * (tie_word_embeddings ? 1 : 2) + num_hidden_layers * layer + h;
}

ModelConfig parse_config(const std::string& json, const std::string& where) {
  rapidjson::Document d = parse_json(json, where);
  if (!d.IsObject()) throw DataError(str(where, ": expected a JSON object"));
  ModelConfig c;
  c.model_type = get_string(d, "model_type", "llama");
  c.vocab_size = get_int(d, "vocab_size", c.vocab_size, where);
  c.hidden_size = get_int(d, "hidden_size", c.hidden_size, where);
  c.intermediate_size = get_int(d, "intermediate_size", c.intermediate_size, where);
  c.num_hidden_layers = get_int(d, "num_hidden_layers", c.num_hidden_layers, where);
  c.num_attention_heads = get_int(d, "num_attention_heads", c.num_attention_heads, where);
  c.num_key_value_heads = get_int(d, "num_key_value_heads", c.num_attention_heads, where);
  c.head_dim = get_int(d, "head_dim", 0, where);
  c.max_position_embeddings = get_int(d, "max_position_embeddings", c.max_position_embeddings, where);
  c.rms_norm_eps = get_double(d, "rms_norm_eps", c.rms_norm_eps, where);
  c.rope_theta = get_double(d, "rope_theta", c.rope_theta, where);
  c.attention_bias = get_bool(d, "attention_bias", c.model_type == "qwen2");
  c.tie_word_embeddings = get_bool(d, "tie_word_embeddings", false);
  c.bos_token_id = get_int(d, "bos_token_id", -1, where);
  c.eos_token_id = get_int(d, "eos_token_id", -1, where);
  c.pad_token_id = get_int(d, "pad_token_id", -1, where);
  c.dtype = get_string(d, "torch_dtype", get_string(d, "dtype", "float32"));
  for (const char* key : {"rope_scaling", "rope_parameters"}) {
    auto it = d.FindMember(key);
    if (it == d.MemberEnd() || !it->value.IsObject()) continue;
    const auto& r = it->value;
    c.rope_theta = get_double(r, "rope_theta", c.rope_theta, where);
    std::string type = get_string(r, "rope_type", get_string(r, "type", "default"));
    if (type == "default" && !r.HasMember("factor")) continue;
    c.rope_scaling.type = type;
    c.rope_scaling.factor = get_double(r, "factor", 1.0, where);
    c.rope_scaling.low_freq_factor = get_double(r, "low_freq_factor", 1.0, where);
    c.rope_scaling.high_freq_factor = get_double(r, "high_freq_factor", 4.0, where);
    c.rope_scaling.original_max_position_embeddings = get_int(r, "original_max_position_embeddings", 0, where);
    c.rope_scaling.beta_fast = get_double(r, "beta_fast", 32.0, where);
    c.rope_scaling.beta_slow = get_double(r, "beta_slow", 1.0, where);
    c.rope_scaling.attention_factor = get_double(r, "attention_factor", 0.0, where);
  }
  c.validate();
  return c;
}

ModelConfig load_config(const std::string& path) { return parse_config(read_file(path), path); }

std::string config_to_json(const ModelConfig& c) {
  bool qwen = c.model_type == "qwen2";
  std::string rope = str("{\"rope_type\": \"", c.rope_scaling.type, "\", \"rope_theta\": ", c.rope_theta);
  if (c.rope_scaling.type != "default") {
    rope += str(", \"factor\": ", c.rope_scaling.factor);
    if (c.rope_scaling.type == "llama3")
      rope += str(", \"low_freq_factor\": ", c.rope_scaling.low_freq_factor, ", \"high_freq_factor\": ",
                  c.rope_scaling.high_freq_factor);
    if (c.rope_scaling.original_max_position_embeddings > 0)
      rope += str(", \"original_max_position_embeddings\": ", c.rope_scaling.original_max_position_embeddings);
    if (c.rope_scaling.type == "yarn")
      rope += str(", \"beta_fast\": ", c.rope_scaling.beta_fast, ", \"beta_slow\": ", c.rope_scaling.beta_slow);
  }
  rope += "}";
  return str("{\n  \"architectures\": [\"", qwen ? "Qwen2ForCausalLM" : "LlamaForCausalLM", "\"],\n",
             "  \"model_type\": \"", qwen ? "qwen2" : "llama", "\",\n",
             "  \"vocab_size\": ", c.vocab_size, ",\n  \"hidden_size\": ", c.hidden_size, ",\n",
             "  \"intermediate_size\": ", c.intermediate_size, ",\n  \"num_hidden_layers\": ", c.num_hidden_layers, ",\n",
             "  \"num_attention_heads\": ", c.num_attention_heads, ",\n  \"num_key_value_heads\": ", c.num_key_value_heads, ",\n",
             "  \"head_dim\": ", c.head_size(), ",\n  \"max_position_embeddings\": ", c.max_position_embeddings, ",\n",
             "  \"rms_norm_eps\": ", c.rms_norm_eps, ",\n  \"rope_theta\": ", c.rope_theta, ",\n",
             "  \"rope_parameters\": ", rope, ",\n",
             c.rope_scaling.type == "default" ? std::string() : "  \"rope_scaling\": " + rope + ",\n",
             qwen ? std::string() : str("  \"attention_bias\": ", c.attention_bias ? "true" : "false", ",\n"),
             "  \"hidden_act\": \"silu\",\n  \"tie_word_embeddings\": ", c.tie_word_embeddings ? "true" : "false", ",\n",
             c.bos_token_id >= 0 ? str("  \"bos_token_id\": ", c.bos_token_id, ",\n") : std::string(),
             c.eos_token_id >= 0 ? str("  \"eos_token_id\": ", c.eos_token_id, ",\n") : std::string(),
             c.pad_token_id >= 0 ? str("  \"pad_token_id\": ", c.pad_token_id, ",\n") : std::string(),
             "  \"torch_dtype\": \"", c.dtype, "\"\n}\n");
}

}  // namespace mathrl::model
