#include "model/safetensors.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <rapidjson/document.h>

#include "common/error.h"
#include "common/jsonl.h"

namespace mathrl::model {

size_t dtype_size(const std::string& d) {
  if (d == "F64" || d == "I64" || d == "U64") return 8;
  if (d == "F32" || d == "I32" || d == "U32") return 4;
  if (d == "F16" || d == "BF16" || d == "I16" || d == "U16") return 2;
  if (d == "I8" || d == "U8" || d == "BOOL" || d == "F8_E4M3" || d == "F8_E5M2") return 1;
  return 0;
}

SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, size_t size, uint64_t file_size, const std::string& where) {
  if (size < 8 || file_size < 8) throw DataError(str(where, ": truncated: shorter than the 8-byte header length"));
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
  if (n > file_size - 8) throw DataError(str(where, ": header length ", n, " runs past the end of the file (", file_size, " bytes)"));
  if (n > size - 8) throw DataError(str(where, ": header length ", n, " is larger than the bytes given"));
  if (n > (100u << 20)) throw DataError(str(where, ": header of ", n, " bytes is implausibly large"));
  SafetensorsHeader h;
  h.data_offset = 8 + n;
  const uint64_t data_size = file_size - h.data_offset;
  rapidjson::Document doc;
  doc.Parse(reinterpret_cast<const char*>(bytes + 8), static_cast<size_t>(n));
  if (doc.HasParseError() || !doc.IsObject()) throw DataError(str(where, ": header is not a JSON object"));
  for (auto it = doc.MemberBegin(); it != doc.MemberEnd(); ++it) {
    std::string name(it->name.GetString(), it->name.GetStringLength());
    const auto& v = it->value;
    if (name == "__metadata__") {
      if (!v.IsObject()) throw DataError(str(where, ": __metadata__ must be an object"));
      for (auto m = v.MemberBegin(); m != v.MemberEnd(); ++m)
        if (m->value.IsString()) h.metadata[m->name.GetString()] = m->value.GetString();
      continue;
    }
    std::string at = str(where, ": tensor '", name, "'");
    if (!v.IsObject()) throw DataError(str(at, ": entry must be an object"));
    TensorEntry t;
    t.name = name;
    auto dt = v.FindMember("dtype");
    if (dt == v.MemberEnd() || !dt->value.IsString()) throw DataError(str(at, ": missing dtype"));
    t.dtype = dt->value.GetString();
    size_t esize = dtype_size(t.dtype);
    if (esize == 0) throw DataError(str(at, ": unknown dtype '", t.dtype, "'"));
    auto sh = v.FindMember("shape");
    if (sh == v.MemberEnd() || !sh->value.IsArray()) throw DataError(str(at, ": missing shape"));
    uint64_t elements = 1;
    for (const auto& d : sh->value.GetArray()) {
      if (!d.IsUint64()) throw DataError(str(at, ": shape entries must be non-negative integers"));
      uint64_t dim = d.GetUint64();
      if (dim != 0 && elements > (UINT64_MAX / 16) / dim) throw DataError(str(at, ": shape is too large"));
      elements *= dim;
      t.shape.push_back(static_cast<int64_t>(dim));
    }
    auto off = v.FindMember("data_offsets");
    if (off == v.MemberEnd() || !off->value.IsArray() || off->value.Size() != 2 || !off->value[0].IsUint64() ||
        !off->value[1].IsUint64())
      throw DataError(str(at, ": data_offsets must be [begin, end]"));
    t.begin = off->value[0].GetUint64();
    t.end = off->value[1].GetUint64();
    if (t.begin > t.end || t.end > data_size)
      throw DataError(str(at, ": data_offsets [", t.begin, ", ", t.end, "] fall outside the ", data_size,
                          "-byte data section (truncated file?)"));
    if (t.end - t.begin != elements * esize)
      throw DataError(str(at, ": ", t.end - t.begin, " bytes do not hold shape of ", elements, " ", t.dtype, " elements"));
    h.tensors.push_back(std::move(t));
  }
  // Tensors must not overlap.
  std::vector<const TensorEntry*> sorted;
  for (const auto& t : h.tensors) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < sorted.size(); ++i)
    if (sorted[i]->begin < sorted[i - 1]->end && sorted[i]->end > sorted[i]->begin)
      throw DataError(str(where, ": tensors '", sorted[i - 1]->name, "' and '", sorted[i]->name, "' overlap"));
  return h;
}

MappedSafetensors::MappedSafetensors(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw DataError(str(path, ": cannot open: ", std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw DataError(str(path, ": cannot stat"));
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) throw DataError(str(path, ": mmap failed: ", std::strerror(errno)));
    base_ = static_cast<const uint8_t*>(p);
  } else {
    ::close(fd);
  }
  try {
    header_ = parse_safetensors_header(base_ ? base_ : reinterpret_cast<const uint8_t*>(""), size_, size_, path);
  } catch (...) {
    if (base_) ::munmap(const_cast<uint8_t*>(base_), size_);
    base_ = nullptr;
    throw;
  }
  for (size_t i = 0; i < header_.tensors.size(); ++i) index_[header_.tensors[i].name] = i;
}

MappedSafetensors::~MappedSafetensors() {
  if (base_) ::munmap(const_cast<uint8_t*>(base_), size_);
}

const TensorEntry* MappedSafetensors::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &header_.tensors[it->second];
}

void write_safetensors(const std::string& path, std::vector<TensorBytes> tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::sort(tensors.begin(), tensors.end(), [](const TensorBytes& a, const TensorBytes& b) { return a.name < b.name; });
  std::string header = "{\"__metadata__\":{";
  bool first = true;
  for (const auto& [k, v] : metadata) {
    if (!first) header += ",";
    append_json_string(header, k);
    header += ":";
    append_json_string(header, v);
    first = false;
  }
  header += "}";
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    MATHRL_CHECK(dtype_size(t.dtype) > 0, "unknown dtype ", t.dtype, " for ", t.name);
    header += ",";
    append_json_string(header, t.name);
    header += str(":{\"dtype\":\"", t.dtype, "\",\"shape\":[");
    for (size_t i = 0; i < t.shape.size(); ++i) header += str(i ? "," : "", t.shape[i]);
    header += str("],\"data_offsets\":[", offset, ",", offset + t.nbytes, "]}");
    offset += t.nbytes;
  }
  header += "}";
  while ((8 + header.size()) % 8 != 0) header += ' ';  // the data section starts 8-byte aligned
  std::string tmp = str(path, ".tmp.", ::getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw Error(str(tmp, ": cannot create: ", std::strerror(errno)));
  uint8_t len[8];
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
  bool ok = std::fwrite(len, 1, 8, f) == 8 && std::fwrite(header.data(), 1, header.size(), f) == header.size();
  for (const auto& t : tensors) ok = ok && std::fwrite(t.data, 1, t.nbytes, f) == t.nbytes;
  ok = std::fflush(f) == 0 && ok;
  ok = ::fsync(fileno(f)) == 0 && ok;
  ok = std::fclose(f) == 0 && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Error(str(path, ": write failed: ", std::strerror(errno)));
  }
}

}  // namespace mathrl::model
