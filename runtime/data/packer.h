// Packs documents into fixed-length training rows: each document is followed by EOS; a row carries
// per-token document ids and positions that restart at every document (for per-document attention
// masking) and a loss mask (0 on prompt tokens, 1 on tokens the model should learn to predict).
#pragma once
#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

namespace mathrl::data {

struct PackedRow {
  std::vector<int32_t> tokens;     // length seq_len
  std::vector<int32_t> doc_ids;    // 0,0,0,1,1,... within the row; -1 on padding
  std::vector<int32_t> positions;  // restart at 0 for every document
  std::vector<uint8_t> loss_mask;  // 1 where the token is a training target
};

class Packer {
 public:
  Packer(int seq_len, int32_t eos_id, int32_t pad_id);
  // Adds a document; mask (optional, same length) marks target tokens; EOS is appended and is a target.
  // Documents longer than a row are split across rows (base pretraining continues them).
  void add(const std::vector<int32_t>& tokens, const std::vector<uint8_t>& mask = {});
  // True when a full row is ready.
  bool ready() const;
  PackedRow pop();
  // Emits the remaining tokens as a padded row (end of data); false when nothing is left.
  bool flush(PackedRow& row);

 private:
  PackedRow take(size_t n);
  int seq_len_;
  int32_t eos_id_, pad_id_;
  std::deque<int32_t> tokens_, docs_, positions_;
  std::deque<uint8_t> mask_;
  int32_t next_doc_ = 0;
};

}  // namespace mathrl::data
