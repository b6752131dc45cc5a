// safetensors files: an 8-byte little-endian header length, a JSON header
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {...}},
// then the tensor bytes. The header parser is torch-free and checks everything a lying or
// truncated file could get wrong; it has a libFuzzer target (tests/fuzz/safetensors_fuzz.cpp).
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace mathrl::model {

struct TensorEntry {
  std::string name;
  std::string dtype;           // F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets into the data section
};

struct SafetensorsHeader {
  uint64_t data_offset = 0;  // where the data section starts in the file
  std::vector<TensorEntry> tensors;
  std::map<std::string, std::string> metadata;
};

size_t dtype_size(const std::string& dtype);  // 0 for an unknown dtype

// Parses and validates the header of a file of `file_size` bytes whose first bytes are `bytes`
// (at least the header; `size` of them). Throws DataError naming `where` and the tensor at fault:
// truncated file, header length past the end, invalid JSON, unknown dtype, offsets out of range,
// overlapping or mis-sized tensors.
SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, size_t size, uint64_t file_size, const std::string& where);

// A read-only memory map of a safetensors file.
class MappedSafetensors {
 public:
  explicit MappedSafetensors(const std::string& path);
  ~MappedSafetensors();
  MappedSafetensors(const MappedSafetensors&) = delete;
  MappedSafetensors& operator=(const MappedSafetensors&) = delete;

  const SafetensorsHeader& header() const { return header_; }
  const std::string& path() const { return path_; }
  const uint8_t* data(const TensorEntry& t) const { return base_ + header_.data_offset + t.begin; }
  const TensorEntry* find(const std::string& name) const;

 private:
  std::string path_;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  SafetensorsHeader header_;
  std::map<std::string, size_t> index_;
};

// A tensor to write: raw little-endian bytes with dtype and shape.
struct TensorBytes {
  std::string name, dtype;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t nbytes = 0;
};
// Writes a safetensors file atomically (temporary file, then rename), tensors in name order.
void write_safetensors(const std::string& path, std::vector<TensorBytes> tensors,
                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

}  // namespace mathrl::model
