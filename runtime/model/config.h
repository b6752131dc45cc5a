// Decoder configuration in Hugging Face's config.json terms (LLaMA, Qwen2, DeepSeek LLaMA-style).
// Reads both the classic keys (rope_theta, rope_scaling, torch_dtype) and transformers 5's
// (rope_parameters, dtype).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mathrl::model {

struct RopeScaling {
  std::string type = "default";  // default | linear | llama3 | yarn
  double factor = 1.0;
  double low_freq_factor = 1.0, high_freq_factor = 4.0;  // llama3
  int64_t original_max_position_embeddings = 0;           // llama3, yarn
  double beta_fast = 32.0, beta_slow = 1.0;               // yarn
  double attention_factor = 0.0;                          // yarn (0 = 0.1 ln(factor) + 1)
};

struct ModelConfig {
  std::string model_type = "llama";
  int64_t vocab_size = 32000;
  int64_t hidden_size = 4096;
  int64_t intermediate_size = 11008;
  int64_t num_hidden_layers = 32;
  int64_t num_attention_heads = 32;
  int64_t num_key_value_heads = 32;
  int64_t head_dim = 0;  // 0 = hidden_size / num_attention_heads
  int64_t max_position_embeddings = 4096;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool attention_bias = false;  // q/k/v biases (Qwen2 always has them)
  bool tie_word_embeddings = false;
  int64_t bos_token_id = -1, eos_token_id = -1, pad_token_id = -1;
  std::string dtype = "float32";

  int64_t head_size() const { return head_dim > 0 ? head_dim : hidden_size / num_attention_heads; }
  // Throws UsageError naming the field when the shape is impossible.
  void validate() const;
  int64_t parameter_count() const;
};

// Parses config.json text; `where` names the file in errors.
ModelConfig parse_config(const std::string& json, const std::string& where);
ModelConfig load_config(const std::string& path);
// config.json that transformers loads (LlamaForCausalLM / Qwen2ForCausalLM).
std::string config_to_json(const ModelConfig& c);

}  // namespace mathrl::model
