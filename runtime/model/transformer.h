// LLaMA-family decoder (LLaMA 1-3, DeepSeekMath/DeepSeek LLaMA-style, Qwen2): RMSNorm, rotary
// embeddings (default, linear, llama3, yarn), SwiGLU MLP, multi-head or grouped-query attention
// through scaled_dot_product_attention (flash kernels on GPU), optional q/k/v bias, tied or untied
// embeddings, and an optional scalar head for reward models and critics.
//
// Parameter names equal Hugging Face's (model.layers.0.self_attn.q_proj.weight, lm_head.weight), so
// checkpoints map one to one. On CUDA the layers take fused kernels (kernels/fused_layer_ops.h) and,
// in training and prefill, concatenated q/k/v and gate/up projections; on CPU the ATen ops.
//
// Two ways in:
//  * hidden_states(ids): whole sequences, causal (optionally per-document masking for packed
//    training data). For training and scoring.
//  * forward_cached(ids, positions, slots, cache): new tokens of sequences that live in KV-cache
//    slots; writes their keys/values and attends to everything earlier in the slot. For sampling.
// Neither returns logits: logits(hidden) does, and RL scores tokens through
// kernels/token_logprobs.h on the LM head so full fp32 logits never exist.
#pragma once
#include <array>
#include <optional>

#include <torch/torch.h>

#include "decode_attention.h"  // kernels::SharedPrefix
#include "model/config.h"

namespace mathrl::model {

// Preallocated keys and values: per layer [slots, kv_heads, max_len, head_dim].
// With shared prefixes, a decode step of slot s reads its positions [0, prefix_len[s]) from slot
// prefix_slot[s] (the slot that holds the prompt), the rest from its own; prefill reads and writes
// each row's own slot. The two maps are device tensors updated in place, so CUDA graphs captured
// against the cache see every update.
struct KvCache {
  std::vector<at::Tensor> k, v;
  int64_t slots = 0, max_len = 0;
  bool shares_prefixes = false;
  at::Tensor prefix_slot, prefix_len;  // [slots] int64 (shares_prefixes only); identity and 0 at first
  static KvCache allocate(const ModelConfig& config, int64_t slots, int64_t max_len, at::ScalarType dtype,
                          at::Device device, bool share_prefixes = false);
  // Slot slots[i] reads positions [0, lens[i]) from slot sources[i] from now on (itself included).
  void share_prefix(const std::vector<int64_t>& slots, const std::vector<int64_t>& sources,
                    const std::vector<int64_t>& lens);
  // Copies positions [0, len) of slot `src` into slot `dst` (samples of one prompt share its prefill).
  void copy_prefix(int64_t src, int64_t dst, int64_t len);
  // The same into several slots: two copies per layer, whatever the number of destinations.
  void copy_prefix_to(int64_t src, const std::vector<int64_t>& dsts, int64_t len);
  // Positions [begin, end) of slot `src` into several slots.
  void copy_positions_to(int64_t src, const std::vector<int64_t>& dsts, int64_t begin, int64_t end);
  size_t bytes() const;
};

class RotaryEmbedding {
 public:
  explicit RotaryEmbedding(const ModelConfig& config);
  // cos, sin for positions [..] -> [.., head_dim] in float32 (yarn's attention factor included).
  std::pair<at::Tensor, at::Tensor> cos_sin(const at::Tensor& positions) const;
  const at::Tensor& inv_freq() const { return inv_freq_; }

 private:
  at::Tensor inv_freq_;  // [head_dim / 2] float32, CPU
  mutable at::Tensor inv_freq_device_;  // inv_freq_ on the device of the last call's positions
  double attention_factor_ = 1.0;
};

class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t size, double eps);
  at::Tensor forward(const at::Tensor& x);
  at::Tensor weight;

 private:
  double eps_;
};
TORCH_MODULE(RMSNorm);

class AttentionImpl : public torch::nn::Module {
 public:
  explicit AttentionImpl(const ModelConfig& c);
  // x [B, T, H]; cos/sin [B, T, D]; attn_mask: undefined (causal) or bool [B, 1, T, S].
  at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& attn_mask);
  // span: keys at positions [0, span) of each slot are read (max position + 1); 0 with one token
  // per row: the in-place decode kernel reads each row's own positions (kernels/decode_attention.h).
  // prefix: each row's shared prompt prefix (decode on a cache that shares prefixes), else undefined.
  at::Tensor forward_cached(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& positions,
                            const at::Tensor& slots, int64_t span, at::Tensor& k_cache, at::Tensor& v_cache,
                            const kernels::SharedPrefix& prefix = {});
  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};

 private:
  std::array<at::Tensor, 3> project(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, bool fuse_projections);
  int64_t heads_, kv_heads_, head_dim_;
};
TORCH_MODULE(Attention);

class MLPImpl : public torch::nn::Module {
 public:
  MLPImpl(int64_t hidden, int64_t intermediate);
  at::Tensor forward(const at::Tensor& x);
  torch::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(MLP);

class DecoderLayerImpl : public torch::nn::Module {
 public:
  explicit DecoderLayerImpl(const ModelConfig& c);
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  Attention self_attn{nullptr};
  MLP mlp{nullptr};
};
TORCH_MODULE(DecoderLayer);

// "model." in Hugging Face's names.
class DecoderBodyImpl : public torch::nn::Module {
 public:
  explicit DecoderBodyImpl(const ModelConfig& c);
  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers;
  RMSNorm norm{nullptr};
};
TORCH_MODULE(DecoderBody);

// Parameter sharding (ZeRO-3; dist::FullyShardedDecoder): the owner of the decoder layers'
// parameters, which then exist in full only while their layer runs. With a host set, a layer under
// autograd runs without keeping activations and is recomputed in backward (as with activation
// checkpointing), so its parameters are gathered twice per step and freed in between.
class LayerParameterHost {
 public:
  virtual ~LayerParameterHost() = default;
  virtual void materialize(int64_t layer) = 0;  // the layer's full parameters are in place
  virtual void release(int64_t layer) = 0;      // ...and freed again
  // After the layer's backward: d(loss)/d(parameter) in the layer's parameters() order
  // (undefined: the parameter got no gradient).
  virtual void reduce_gradients(int64_t layer, std::vector<at::Tensor> grads) = 0;
};

class DecoderImpl : public torch::nn::Module {
 public:
  explicit DecoderImpl(const ModelConfig& config);

  // ids [B, T] int64. positions [B, T] (default 0..T-1). document_ids [B, T]: when given, a token
  // attends only to earlier tokens of the same document (packed training sequences).
  // attention_mask [B, T, T] bool (instead of document_ids): query i may attend key j where true
  // (e.g. several completions packed after their shared prompt, rl/scoring).
  at::Tensor hidden_states(const at::Tensor& ids, const at::Tensor& positions = {}, const at::Tensor& document_ids = {},
                           const at::Tensor& attention_mask = {});
  at::Tensor forward_cached(const at::Tensor& ids, const at::Tensor& positions, const at::Tensor& slots, KvCache& cache);
  // True when forward_cached over `cache` with `tokens` new tokens per row reads the cache in place
  // (FlashAttention for any count, or the decode kernel for one): no host synchronization, so such
  // steps can be captured in CUDA graphs.
  bool attends_cache_in_place(const KvCache& cache, int64_t tokens) const;
  at::Tensor logits(const at::Tensor& hidden);
  at::Tensor lm_head_weight() const;

  // Adds the scalar head ("score", Linear(hidden, 1)) used by reward models and critics.
  void add_value_head();
  bool has_value_head() const { return !value_head.is_empty(); }
  at::Tensor values(const at::Tensor& hidden);  // [B, T]

  const ModelConfig& config() const { return config_; }

  // Activation checkpointing: keep only each layer's input during the forward pass and recompute
  // the layer in backward (less memory for long sequences, one more forward's worth of compute).
  void set_activation_checkpointing(bool on) { checkpointing_ = on; }
  bool activation_checkpointing() const { return checkpointing_; }

  // Layers' parameters owned by `host` (nullptr: by the module, the default). Not owned here.
  void set_layer_parameter_host(LayerParameterHost* host) { host_ = host; }
  LayerParameterHost* layer_parameter_host() const { return host_; }

  DecoderBody model{nullptr};
  torch::nn::Linear lm_head{nullptr};  // absent when embeddings are tied
  torch::nn::Linear value_head{nullptr};

 private:
  ModelConfig config_;
  RotaryEmbedding rope_;
  bool checkpointing_ = false;
  LayerParameterHost* host_ = nullptr;
};
TORCH_MODULE(Decoder);

// A random-initialized decoder (normal(0, 0.02) weights, unit norms), as from-scratch models and
// benchmarks start.
Decoder random_decoder(const ModelConfig& config, uint64_t seed, at::ScalarType dtype = at::kFloat,
                       at::Device device = at::kCPU);

}  // namespace mathrl::model
