#include "data/packer.h"

#include <algorithm>

#include "common/error.h"

namespace mathrl::data {

Packer::Packer(int seq_len, int32_t eos_id, int32_t pad_id) : seq_len_(seq_len), eos_id_(eos_id), pad_id_(pad_id) {
  if (seq_len < 2) throw UsageError(str("bad argument #1 to 'pack' (seq_len must be >= 2, got ", seq_len, ")"));
}

void Packer::add(const std::vector<int32_t>& tokens, const std::vector<uint8_t>& mask) {
  MATHRL_CHECK(mask.empty() || mask.size() == tokens.size(), "mask length ", mask.size(), " != ", tokens.size());
  const int32_t doc = next_doc_++;
  for (size_t i = 0; i <= tokens.size(); ++i) {
    const bool is_eos = i == tokens.size();
    tokens_.push_back(is_eos ? eos_id_ : tokens[i]);
    mask_.push_back(is_eos ? 1 : (mask.empty() ? 1 : mask[i]));
    docs_.push_back(doc);
    positions_.push_back(static_cast<int32_t>(i));
  }
}

bool Packer::ready() const { return tokens_.size() >= static_cast<size_t>(seq_len_); }

PackedRow Packer::take(size_t n) {
  PackedRow row;
  row.tokens.assign(seq_len_, pad_id_);
  row.doc_ids.assign(seq_len_, -1);
  row.positions.assign(seq_len_, 0);
  row.loss_mask.assign(seq_len_, 0);
  // Renumber documents from 0 inside the row; positions of a split document restart at 0 too,
  // since its earlier part is not visible in this row.
  int32_t first_doc = n ? docs_.front() : 0, first_pos = n ? positions_.front() : 0;
  for (size_t i = 0; i < n; ++i) {
    row.tokens[i] = tokens_.front();
    row.doc_ids[i] = docs_.front() - first_doc;
    row.positions[i] = docs_.front() == first_doc ? positions_.front() - first_pos : positions_.front();
    row.loss_mask[i] = mask_.front();
    tokens_.pop_front(); docs_.pop_front(); positions_.pop_front(); mask_.pop_front();
  }
  return row;
}

PackedRow Packer::pop() {
  MATHRL_CHECK(ready(), "Packer::pop without a full row");
  return take(seq_len_);
}

bool Packer::flush(PackedRow& row) {
  if (tokens_.empty()) return false;
  row = take(std::min(tokens_.size(), static_cast<size_t>(seq_len_)));
  return true;
}

}  // namespace mathrl::data
