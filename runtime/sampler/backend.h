// The narrow model interface the generation engine needs: a KV cache of `slots` rows of
// `max_len` positions each, filled by prefill and grown by decode. A model (runtime/model) is
// adapted to it; tests use a tiny scripted backend. All tensors live on device().
#pragma once
#include <cstdint>
#include <stdexcept>
#include <vector>

#include <torch/torch.h>

namespace mathrl::sampler {

class DecodeBackend {
 public:
  virtual ~DecodeBackend() = default;

  virtual int64_t vocab_size() const = 0;
  virtual int64_t max_context() const = 0;  // longest prompt + completion the model supports
  virtual torch::Device device() const = 0;

  // (Re)allocates the cache: `slots` sequences of up to `max_len` positions each. Called once per
  // generate() before any prefill; previous contents are gone.
  virtual void allocate(int64_t slots, int64_t max_len) = 0;

  // Runs the prompt `ids` ([L] int64) into slot `slot`, positions 0..L-1, and returns the logits
  // of its last position ([V], any float dtype).
  virtual torch::Tensor prefill(const torch::Tensor& ids, int64_t slot) = 0;

  // Copies positions [0, len) of slot `src` into slot `dst` (G samples share one prefill).
  virtual void copy_prefix(int64_t src, int64_t dst, int64_t len) = 0;

  // Copies positions [begin, end) of slot `src` into each slot of `dsts`: a sample that shared
  // another's decode rows (identical tokens so far) and now diverges takes its own copy of them.
  virtual void copy_positions(int64_t src, const std::vector<int64_t>& dsts, int64_t begin, int64_t end) = 0;

  // Several prompts at once (ids[i] into slots[i]); returns each one's last logits. The default
  // runs them one by one; a model backend batches them.
  virtual std::vector<torch::Tensor> prefill_many(const std::vector<torch::Tensor>& ids, const std::vector<int64_t>& slots) {
    std::vector<torch::Tensor> out;
    for (size_t i = 0; i < ids.size(); ++i) out.push_back(prefill(ids[i], slots[i]));
    return out;
  }
  // copy_prefix from one source into several slots.
  virtual void copy_prefix_to(int64_t src, const std::vector<int64_t>& dsts, int64_t len) {
    for (int64_t d : dsts) copy_prefix(src, d, len);
  }

  // Shared prefixes instead of copies: when true, the engine calls share_prefix for every admitted
  // slot (a prompt's own slot names itself) and keeps a prompt's slot, unused, until the last
  // sample reading it finishes.
  virtual bool shares_prefixes() const { return false; }
  struct PrefixShare {
    int64_t slot, source, len;  // decode of `slot` reads positions [0, len) from slot `source`
  };
  virtual void share_prefix(const std::vector<PrefixShare>& shares) {
    (void)shares;
    throw std::logic_error("share_prefix on a backend that does not share prefixes");
  }

  // One step for B sequences: token t_i ([B] int64) at position p_i ([B] int64) of slot s_i
  // ([B] int64); attends to positions 0..p_i of its slot. Returns logits [B, V].
  virtual torch::Tensor decode(const torch::Tensor& tokens, const torch::Tensor& positions,
                               const torch::Tensor& slots) = 0;
};

}  // namespace mathrl::sampler
