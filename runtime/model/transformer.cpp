#include "model/transformer.h"

#include "decode_attention.h"
#include "flash_cached_attention.h"
#include "fused_layer_ops.h"

#include <cmath>

#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <ATen/CPUGeneratorImpl.h>

#include "common/error.h"

namespace mathrl::model {

namespace {

// The fused CUDA path of a layer (kernels/fused_layer_ops: RMSNorm, rotary embedding and SwiGLU
// in one kernel each, and one projection for q/k/v and one for gate/up); elsewhere the ATen ops.
bool fused_layer(const at::Tensor& x) { return x.is_cuda() && kernels::fused_layer_ops_enabled(); }

double yarn_correction_dim(double rotations, int64_t dim, double base, double max_pos) {
  return (dim * std::log(max_pos / (rotations * 2 * M_PI))) / (2 * std::log(base));
}

}  // namespace

// ---- rotary embeddings ---------------------------------------------------------------------

RotaryEmbedding::RotaryEmbedding(const ModelConfig& c) {
  const int64_t dim = c.head_size();
  at::Tensor exponents = at::arange(0, dim, 2, at::kDouble) / static_cast<double>(dim);
  at::Tensor pos_freqs = at::pow(c.rope_theta, exponents);
  at::Tensor inv = 1.0 / pos_freqs;
  const RopeScaling& r = c.rope_scaling;
  if (r.type == "linear") {
    inv = inv / r.factor;
  } else if (r.type == "llama3") {
    double old_len = static_cast<double>(r.original_max_position_embeddings > 0 ? r.original_max_position_embeddings
                                                                                : c.max_position_embeddings);
    double low_wavelen = old_len / r.low_freq_factor, high_wavelen = old_len / r.high_freq_factor;
    at::Tensor wavelen = 2 * M_PI / inv;
    at::Tensor scaled = at::where(wavelen > low_wavelen, inv / r.factor, inv);
    at::Tensor smooth = (old_len / wavelen - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
    at::Tensor smoothed = (1 - smooth) * scaled / r.factor + smooth * scaled;
    at::Tensor medium = (wavelen >= high_wavelen).logical_and(wavelen <= low_wavelen);
    inv = at::where(medium, smoothed, scaled);
  } else if (r.type == "yarn") {
    double max_pos = static_cast<double>(r.original_max_position_embeddings > 0 ? r.original_max_position_embeddings
                                                                                : c.max_position_embeddings);
    attention_factor_ = r.attention_factor > 0 ? r.attention_factor : 0.1 * std::log(r.factor) + 1.0;
    double low = std::floor(yarn_correction_dim(r.beta_fast, dim, c.rope_theta, max_pos));
    double high = std::ceil(yarn_correction_dim(r.beta_slow, dim, c.rope_theta, max_pos));
    low = std::max(low, 0.0);
    high = std::min(high, static_cast<double>(dim - 1));
    if (low == high) high += 0.001;
    at::Tensor ramp = ((at::arange(dim / 2, at::kDouble) - low) / (high - low)).clamp(0, 1);
    at::Tensor extrapolation_factor = 1 - ramp;
    at::Tensor interpolation = 1.0 / (r.factor * pos_freqs);
    inv = interpolation * (1 - extrapolation_factor) + inv * extrapolation_factor;
  }
  inv_freq_ = inv.to(at::kFloat);
}

std::pair<at::Tensor, at::Tensor> RotaryEmbedding::cos_sin(const at::Tensor& positions) const {
  // The frequencies are kept on the positions' device after the first call: a host-to-device copy
  // per step would block CUDA-graph capture (and costs a transfer every decode step).
  if (!inv_freq_device_.defined() || inv_freq_device_.device() != positions.device())
    inv_freq_device_ = inv_freq_.to(positions.device());
  const at::Tensor& inv = inv_freq_device_;
  at::Tensor freqs = positions.to(at::kFloat).unsqueeze(-1) * inv;  // [..., D/2]
  at::Tensor emb = at::cat({freqs, freqs}, -1);
  return {emb.cos() * attention_factor_, emb.sin() * attention_factor_};
}

// ---- layers ------------------------------------------------------------------------------

RMSNormImpl::RMSNormImpl(int64_t size, double eps) : eps_(eps) {
  weight = register_parameter("weight", torch::ones({size}));
}

at::Tensor RMSNormImpl::forward(const at::Tensor& x) { return kernels::rms_norm(x, weight, eps_); }

AttentionImpl::AttentionImpl(const ModelConfig& c)
    : heads_(c.num_attention_heads), kv_heads_(c.num_key_value_heads), head_dim_(c.head_size()) {
  auto lin = [&](int64_t in, int64_t out, bool bias) { return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(bias)); };
  q_proj = register_module("q_proj", lin(c.hidden_size, heads_ * head_dim_, c.attention_bias));
  k_proj = register_module("k_proj", lin(c.hidden_size, kv_heads_ * head_dim_, c.attention_bias));
  v_proj = register_module("v_proj", lin(c.hidden_size, kv_heads_ * head_dim_, c.attention_bias));
  o_proj = register_module("o_proj", lin(heads_ * head_dim_, c.hidden_size, false));
}

// q [B, T, heads, D], k and v [B, T, kv_heads, D], rotary embedding applied to q and k. With
// fuse_projections one matmul computes q, k and v (the weights concatenated per call: a copy of the
// layer's projection weights, small beside the activations, and one input gradient instead of three
// summed); otherwise the three projections of the Hugging Face layout.
std::array<at::Tensor, 3> AttentionImpl::project(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                                                 bool fuse_projections) {
  const int64_t B = x.size(0), T = x.size(1), qn = heads_ * head_dim_, kvn = kv_heads_ * head_dim_;
  at::Tensor q, k, v;
  if (fuse_projections) {
    at::Tensor w = at::cat({q_proj->weight, k_proj->weight, v_proj->weight});
    at::Tensor b = q_proj->bias.defined() ? at::cat({q_proj->bias, k_proj->bias, v_proj->bias}) : at::Tensor();
    at::Tensor qkv = at::linear(x, w, b);
    q = qkv.narrow(2, 0, qn).view({B, T, heads_, head_dim_});
    k = qkv.narrow(2, qn, kvn).view({B, T, kv_heads_, head_dim_});
    v = qkv.narrow(2, qn + kvn, kvn).view({B, T, kv_heads_, head_dim_});
  } else {
    q = q_proj(x).view({B, T, heads_, head_dim_});
    k = k_proj(x).view({B, T, kv_heads_, head_dim_});
    v = v_proj(x).view({B, T, kv_heads_, head_dim_});
  }
  return {kernels::rope(q, cos, sin), kernels::rope(k, cos, sin), v};
}

at::Tensor AttentionImpl::forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                                  const at::Tensor& attn_mask) {
  const int64_t B = x.size(0), T = x.size(1);
  auto [q, k, v] = project(x, cos, sin, fused_layer(x));
  at::Tensor out = at::scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                                    attn_mask.defined() ? std::optional<at::Tensor>(attn_mask) : std::nullopt,
                                                    0.0, !attn_mask.defined(), std::nullopt, kv_heads_ != heads_);
  return o_proj(out.transpose(1, 2).reshape({B, T, heads_ * head_dim_}));
}

at::Tensor AttentionImpl::forward_cached(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                                         const at::Tensor& positions, const at::Tensor& slots, int64_t span,
                                         at::Tensor& k_cache, at::Tensor& v_cache, const kernels::SharedPrefix& prefix) {
  const int64_t B = x.size(0), T = x.size(1);
  // Separate projections: a decode step reads each weight once, a concatenation would copy them.
  auto [q_bthd, k_bthd, v_bthd] = project(x, cos, sin, false);
  // Write the new keys/values at (slot, position): cache viewed as [slots, max_len, kv_heads, D].
  at::Tensor slot_index = slots.unsqueeze(1).expand({B, T});
  k_cache.permute({0, 2, 1, 3}).index_put_({slot_index, positions}, k_bthd.to(k_cache.scalar_type()));
  v_cache.permute({0, 2, 1, 3}).index_put_({slot_index, positions}, v_bthd.to(v_cache.scalar_type()));
  const bool decode_kernel = T == 1 && kernels::decode_attention_preferred() &&
                             kernels::decode_attention_uses_kernel(q_bthd.scalar_type(), heads_, k_cache);
  if (!decode_kernel && kernels::flash_cached_attention_supported(q_bthd.scalar_type(), heads_, k_cache)) {  // bf16/fp16 on CUDA
    at::Tensor out = kernels::flash_cached_attention(q_bthd, k_cache, v_cache, slots, positions.select(1, T - 1),
                                                     1.0 / std::sqrt(static_cast<double>(head_dim_)), prefix);
    return o_proj(out.view({B, T, heads_ * head_dim_}));
  }
  if (span == 0) {  // one new token per row, attention read in place from the cache (kernels/decode_attention)
    at::Tensor out = kernels::decode_attention(q_bthd.squeeze(1), k_cache, v_cache, slots, positions.view({B}),
                                               1.0 / std::sqrt(static_cast<double>(head_dim_)), prefix);
    return o_proj(out.view({B, 1, heads_ * head_dim_}));
  }
  at::Tensor q = q_bthd.transpose(1, 2);
  // Attend over the slot's positions 0..span-1 with a per-row causal mask. The query heads of a
  // group share their K/V head: grouping the queries ([B, kv_heads, group * T, D]) reads each
  // cached key once instead of expanding K/V to every head.
  // Gather the span only (narrow first): early in a decode the span is a fraction of max_len.
  auto gather = [&](const at::Tensor& cache, const at::Tensor& rows) {
    return cache.narrow(2, 0, span).index_select(0, rows).to(q.scalar_type());
  };
  at::Tensor keys = gather(k_cache, slots), values = gather(v_cache, slots);
  at::Tensor key_pos = at::arange(span, positions.options()).view({1, 1, 1, span});
  if (prefix.defined()) {  // positions below the row's prefix length come from the prefix's slot
    at::Tensor from_prefix = (key_pos < prefix.len.view({B, 1, 1, 1})).transpose(-1, -2);  // [B, 1, span, 1]
    keys = at::where(from_prefix, gather(k_cache, prefix.slot), keys);
    values = at::where(from_prefix, gather(v_cache, prefix.slot), values);
  }
  const int64_t group = heads_ / kv_heads_;
  at::Tensor qg = q.reshape({B, kv_heads_, group * T, head_dim_});
  at::Tensor scores = at::matmul(qg, keys.transpose(-1, -2)).to(at::kFloat) / std::sqrt(static_cast<double>(head_dim_));
  at::Tensor mask = (key_pos <= positions.view({B, 1, T, 1})).repeat({1, 1, group, 1});  // [B, 1, group * T, span]
  at::Tensor probs = at::softmax(scores.masked_fill(mask.logical_not(), -INFINITY), -1).to(q.scalar_type());
  at::Tensor out = at::matmul(probs, values).view({B, heads_, T, head_dim_});
  return o_proj(out.transpose(1, 2).reshape({B, T, heads_ * head_dim_}));
}

MLPImpl::MLPImpl(int64_t hidden, int64_t intermediate) {
  auto lin = [](int64_t in, int64_t out) { return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false)); };
  gate_proj = register_module("gate_proj", lin(hidden, intermediate));
  up_proj = register_module("up_proj", lin(hidden, intermediate));
  down_proj = register_module("down_proj", lin(intermediate, hidden));
}

// Training and prefill on the fused path: one matmul for gate and up (weights concatenated per call)
// and one SwiGLU kernel over its [..., 2I] output. A decode step (one token per row) keeps the two
// projections: concatenating would copy both weights every step.
at::Tensor MLPImpl::forward(const at::Tensor& x) {
  if (fused_layer(x) && x.dim() == 3 && x.size(1) > 1) {
    at::Tensor gate_up = at::linear(x, at::cat({gate_proj->weight, up_proj->weight}));
    return down_proj(kernels::swiglu(gate_up));
  }
  return down_proj(kernels::silu_mul(gate_proj(x), up_proj(x)));
}

DecoderLayerImpl::DecoderLayerImpl(const ModelConfig& c) {
  self_attn = register_module("self_attn", Attention(c));
  mlp = register_module("mlp", MLP(c.hidden_size, c.intermediate_size));
  input_layernorm = register_module("input_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
  post_attention_layernorm = register_module("post_attention_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
}

DecoderBodyImpl::DecoderBodyImpl(const ModelConfig& c) {
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(c.vocab_size, c.hidden_size));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(DecoderLayer(c));
  norm = register_module("norm", RMSNorm(c.hidden_size, c.rms_norm_eps));
}

// ---- activation checkpointing ---------------------------------------------------------------

namespace {

at::Tensor run_layer(DecoderLayerImpl& layer, const at::Tensor& h, const at::Tensor& cos, const at::Tensor& sin,
                     const at::Tensor& mask) {
  at::Tensor x = h + layer.self_attn->forward(layer.input_layernorm(h), cos, sin, mask);
  return x + layer.mlp(layer.post_attention_layernorm(x));
}

// Runs a layer without keeping its activations; backward recomputes it with grad enabled and
// backpropagates through the recomputation, which also accumulates the layer's parameter grads.
class CheckpointedLayer : public torch::autograd::Function<CheckpointedLayer> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& h, int64_t layer_address,
                            const at::Tensor& cos, const at::Tensor& sin, const std::optional<at::Tensor>& mask) {
    ctx->save_for_backward({h, cos, sin});
    ctx->saved_data["layer"] = layer_address;
    ctx->saved_data["mask"] = mask;
    at::NoGradGuard no_grad;
    return run_layer(*reinterpret_cast<DecoderLayerImpl*>(layer_address), h, cos, sin, mask.value_or(at::Tensor()));
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto* layer = reinterpret_cast<DecoderLayerImpl*>(ctx->saved_data["layer"].toInt());
    at::Tensor h = saved[0].detach().requires_grad_(true);
    at::Tensor out;
    {
      at::AutoGradMode grad_mode(true);
      at::IValue mask = ctx->saved_data["mask"];
      out = run_layer(*layer, h, saved[1], saved[2], mask.isNone() ? at::Tensor() : mask.toTensor());
    }
    torch::autograd::backward({out}, {grads[0]});
    return {h.grad(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// The layer's parameters are in place from construction to destruction (exceptions included).
class Materialized {
 public:
  Materialized(LayerParameterHost* host, int64_t layer) : host_(host), layer_(layer) { host_->materialize(layer_); }
  ~Materialized() {
    try {
      host_->release(layer_);
    } catch (...) {  // a failed free must not hide the error that is unwinding the stack
    }
  }
  Materialized(const Materialized&) = delete;
  Materialized& operator=(const Materialized&) = delete;

 private:
  LayerParameterHost* host_;
  int64_t layer_;
};

// A layer whose parameters a LayerParameterHost owns: forward gathers them, runs the layer without
// autograd and frees them; backward gathers them again, recomputes the layer with autograd, hands
// the parameter gradients to the host and frees the parameters.
class ShardedLayer : public torch::autograd::Function<ShardedLayer> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& h, int64_t layer_address,
                            int64_t host_address, int64_t index, const at::Tensor& cos, const at::Tensor& sin,
                            const std::optional<at::Tensor>& mask) {
    ctx->save_for_backward({h, cos, sin});
    ctx->saved_data["layer"] = layer_address;
    ctx->saved_data["host"] = host_address;
    ctx->saved_data["index"] = index;
    ctx->saved_data["mask"] = mask;
    at::NoGradGuard no_grad;
    Materialized in_place(reinterpret_cast<LayerParameterHost*>(host_address), index);
    return run_layer(*reinterpret_cast<DecoderLayerImpl*>(layer_address), h, cos, sin, mask.value_or(at::Tensor()));
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto* layer = reinterpret_cast<DecoderLayerImpl*>(ctx->saved_data["layer"].toInt());
    auto* host = reinterpret_cast<LayerParameterHost*>(ctx->saved_data["host"].toInt());
    const int64_t index = ctx->saved_data["index"].toInt();
    at::Tensor h = saved[0].detach().requires_grad_(true);
    at::Tensor h_grad;
    {
      Materialized in_place(host, index);
      std::vector<at::Tensor> inputs{h};
      for (const auto& p : layer->parameters()) inputs.push_back(p);
      at::AutoGradMode grad_mode(true);
      at::IValue mask = ctx->saved_data["mask"];
      at::Tensor out = run_layer(*layer, h, saved[1], saved[2], mask.isNone() ? at::Tensor() : mask.toTensor());
      auto d = torch::autograd::grad({out}, inputs, {grads[0]}, /*retain_graph=*/false, /*create_graph=*/false,
                                     /*allow_unused=*/true);
      h_grad = d[0];
      host->reduce_gradients(index, std::vector<at::Tensor>(d.begin() + 1, d.end()));
    }
    return {h_grad, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

// ---- decoder -----------------------------------------------------------------------------

DecoderImpl::DecoderImpl(const ModelConfig& config) : config_(config), rope_(config) {
  config_.validate();
  model = register_module("model", DecoderBody(config_));
  if (!config_.tie_word_embeddings)
    lm_head = register_module("lm_head", torch::nn::Linear(torch::nn::LinearOptions(config_.hidden_size, config_.vocab_size).bias(false)));
}

at::Tensor DecoderImpl::hidden_states(const at::Tensor& ids, const at::Tensor& positions_in, const at::Tensor& document_ids,
                                      const at::Tensor& attention_mask) {
  MATHRL_CHECK(ids.dim() == 2, "ids must be [B, T], got ", ids.sizes());
  const int64_t B = ids.size(0), T = ids.size(1);
  at::Tensor positions = positions_in.defined() ? positions_in : at::arange(T, ids.options()).unsqueeze(0).expand({B, T});
  auto [cos, sin] = rope_.cos_sin(positions);
  at::Tensor mask;
  if (attention_mask.defined()) {
    MATHRL_CHECK(!document_ids.defined(), "hidden_states: give document_ids or attention_mask, not both");
    MATHRL_CHECK(attention_mask.sizes() == at::IntArrayRef({B, T, T}) && attention_mask.scalar_type() == at::kBool,
                 "attention_mask must be bool [B, T, T] = [", B, ", ", T, ", ", T, "], got ", attention_mask.sizes());
    mask = attention_mask.unsqueeze(1);
  } else if (document_ids.defined()) {
    at::Tensor same = document_ids.unsqueeze(2) == document_ids.unsqueeze(1);  // [B, T, T]
    at::Tensor causal = at::ones({T, T}, ids.options().dtype(at::kBool)).tril();
    mask = same.logical_and(causal).unsqueeze(1);
  }
  at::Tensor h = model->embed_tokens(ids);
  const bool checkpoint = checkpointing_ && at::GradMode::is_enabled() && is_training();
  const auto opt_mask = mask.defined() ? std::optional<at::Tensor>(mask) : std::nullopt;
  int64_t index = 0;
  for (const auto& m : *model->layers) {
    auto layer = m->as<DecoderLayerImpl>();
    const auto address = reinterpret_cast<int64_t>(layer);
    if (host_ && at::GradMode::is_enabled()) {
      h = ShardedLayer::apply(h, address, reinterpret_cast<int64_t>(host_), index, cos, sin, opt_mask);
    } else if (host_) {
      Materialized in_place(host_, index);
      h = run_layer(*layer, h, cos, sin, mask);
    } else {
      h = checkpoint ? CheckpointedLayer::apply(h, address, cos, sin, opt_mask) : run_layer(*layer, h, cos, sin, mask);
    }
    ++index;
  }
  return model->norm(h);
}

at::Tensor DecoderImpl::forward_cached(const at::Tensor& ids, const at::Tensor& positions, const at::Tensor& slots,
                                       KvCache& cache) {
  MATHRL_CHECK(ids.dim() == 2 && positions.sizes() == ids.sizes() && slots.dim() == 1 && slots.size(0) == ids.size(0),
               "forward_cached: ids and positions [B, T], slots [B]");
  MATHRL_CHECK(static_cast<int64_t>(cache.k.size()) == config_.num_hidden_layers, "cache has the wrong number of layers");
  auto [cos, sin] = rope_.cos_sin(positions);
  // FlashAttention (bf16/fp16 on CUDA, any T) and the decode kernel (T == 1) read the cache in place
  // and need no span, hence no host synchronization (CUDA graphs capture decode steps); otherwise
  // one host sync per step, not per layer. span == 0 selects the in-place paths.
  int64_t span = 0;
  if (!attends_cache_in_place(cache, ids.size(1))) {
    span = positions.max().item<int64_t>() + 1;
    MATHRL_CHECK(span <= cache.max_len, "position ", span - 1, " is outside the cache of ", cache.max_len);
  }
  // Decode steps on a cache that shares prefixes read each row's prompt from the prompt's slot.
  kernels::SharedPrefix prefix;
  if (cache.shares_prefixes && ids.size(1) == 1) {
    at::Tensor rows = slots.to(at::kLong);
    prefix = {cache.prefix_slot.index_select(0, rows), cache.prefix_len.index_select(0, rows)};
  }
  at::Tensor h = model->embed_tokens(ids);
  size_t i = 0;
  for (const auto& m : *model->layers) {
    auto layer = m->as<DecoderLayerImpl>();
    std::optional<Materialized> in_place;
    if (host_) in_place.emplace(host_, static_cast<int64_t>(i));
    h = h + layer->self_attn->forward_cached(layer->input_layernorm(h), cos, sin, positions, slots, span, cache.k[i],
                                             cache.v[i], prefix);
    h = h + layer->mlp(layer->post_attention_layernorm(h));
    ++i;
  }
  return model->norm(h);
}

bool DecoderImpl::attends_cache_in_place(const KvCache& cache, int64_t tokens) const {
  const auto dtype = model->embed_tokens->weight.scalar_type();
  const int64_t heads = config_.num_attention_heads;
  return kernels::flash_cached_attention_supported(dtype, heads, cache.k[0]) ||
         (tokens == 1 && kernels::decode_attention_in_place(dtype, heads, cache.k[0]));
}

at::Tensor DecoderImpl::lm_head_weight() const {
  return config_.tie_word_embeddings ? model->embed_tokens->weight : lm_head->weight;
}

at::Tensor DecoderImpl::logits(const at::Tensor& hidden) { return at::matmul(hidden, lm_head_weight().t()); }

void DecoderImpl::add_value_head() {
  if (has_value_head()) return;
  value_head = register_module("score", torch::nn::Linear(torch::nn::LinearOptions(config_.hidden_size, 1).bias(false)));
  auto p = model->embed_tokens->weight;
  value_head->to(p.device(), p.scalar_type());
}

at::Tensor DecoderImpl::values(const at::Tensor& hidden) {
  MATHRL_CHECK(has_value_head(), "this model has no value head (add_value_head)");
  return value_head(hidden).squeeze(-1);
}

KvCache KvCache::allocate(const ModelConfig& c, int64_t slots, int64_t max_len, at::ScalarType dtype, at::Device device,
                          bool share_prefixes) {
  KvCache cache;
  cache.slots = slots;
  cache.max_len = max_len;
  auto opts = at::TensorOptions().dtype(dtype).device(device);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    cache.k.push_back(at::zeros({slots, c.num_key_value_heads, max_len, c.head_size()}, opts));
    cache.v.push_back(at::zeros({slots, c.num_key_value_heads, max_len, c.head_size()}, opts));
  }
  if (share_prefixes) {
    cache.shares_prefixes = true;
    cache.prefix_slot = at::arange(slots, opts.dtype(at::kLong));
    cache.prefix_len = at::zeros({slots}, opts.dtype(at::kLong));
  }
  return cache;
}

void KvCache::share_prefix(const std::vector<int64_t>& rows, const std::vector<int64_t>& sources,
                           const std::vector<int64_t>& lens) {
  MATHRL_CHECK(shares_prefixes, "share_prefix: this cache was allocated without shared prefixes");
  MATHRL_CHECK(rows.size() == sources.size() && rows.size() == lens.size(), "share_prefix: one source and length per slot");
  if (rows.empty()) return;
  for (size_t i = 0; i < rows.size(); ++i)
    MATHRL_CHECK(rows[i] >= 0 && rows[i] < slots && sources[i] >= 0 && sources[i] < slots && lens[i] >= 0 &&
                     lens[i] <= max_len,
                 "share_prefix: slot ", rows[i], " <- slot ", sources[i], " positions [0, ", lens[i], ") outside the cache");
  const auto device = prefix_slot.device();
  at::Tensor index = at::tensor(rows, at::kLong).to(device);
  prefix_slot.index_put_({index}, at::tensor(sources, at::kLong).to(device));
  prefix_len.index_put_({index}, at::tensor(lens, at::kLong).to(device));
}

void KvCache::copy_prefix(int64_t src, int64_t dst, int64_t len) { copy_positions_to(src, {dst}, 0, len); }

void KvCache::copy_prefix_to(int64_t src, const std::vector<int64_t>& dsts, int64_t len) {
  copy_positions_to(src, dsts, 0, len);
}

void KvCache::copy_positions_to(int64_t src, const std::vector<int64_t>& dsts, int64_t begin, int64_t end) {
  MATHRL_CHECK(src >= 0 && src < slots && begin >= 0 && begin <= end && end <= max_len, "KV copy: slot ", src,
               " positions [", begin, ", ", end, ") outside the cache (", slots, " slots of ", max_len, ")");
  std::vector<int64_t> targets;
  for (int64_t d : dsts) {
    MATHRL_CHECK(d >= 0 && d < slots, "KV copy: destination slot ", d, " outside the cache (", slots, " slots)");
    if (d != src) targets.push_back(d);
  }
  const int64_t len = end - begin;
  if (targets.empty() || len == 0) return;
  if (targets.size() == 1) {
    for (size_t i = 0; i < k.size(); ++i) {
      k[i][targets[0]].narrow(1, begin, len).copy_(k[i][src].narrow(1, begin, len));
      v[i][targets[0]].narrow(1, begin, len).copy_(v[i][src].narrow(1, begin, len));
    }
    return;
  }
  auto index = at::tensor(targets, at::kLong).to(k[0].device());
  const auto n = static_cast<int64_t>(targets.size());
  for (size_t i = 0; i < k.size(); ++i) {
    for (at::Tensor* cache : {&k[i], &v[i]}) {
      at::Tensor part = cache->narrow(2, begin, len);  // [slots, kv_heads, len, D] view
      part.index_copy_(0, index, part[src].unsqueeze(0).expand({n, -1, -1, -1}).contiguous());
    }
  }
}

size_t KvCache::bytes() const {
  size_t total = 0;
  for (size_t i = 0; i < k.size(); ++i) total += k[i].nbytes() + v[i].nbytes();
  return total;
}

Decoder random_decoder(const ModelConfig& config, uint64_t seed, at::ScalarType dtype, at::Device device) {
  Decoder d(config);
  // Move first, then fill: a 7B model is never materialized in float32 on the host.
  d->to(device, dtype);
  torch::NoGradGuard no_grad;
  at::Generator gen = device.is_cuda() ? at::cuda::detail::createCUDAGenerator(device.index())
                                       : at::detail::createCPUGenerator(seed);
  gen.set_current_seed(seed);
  for (auto& p : d->named_parameters()) {
    if (p.key().find("norm") != std::string::npos) p.value().fill_(1.0);
    else p.value().normal_(0.0, 0.02, gen);
  }
  return d;
}

}  // namespace mathrl::model
