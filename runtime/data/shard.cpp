#include "data/shard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/error.h"

namespace mathrl::data {
namespace {
constexpr char kMagic[8] = {'M', 'R', 'L', 'T', 'O', 'K', 'S', '\0'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderBytes = 32;

struct Header {
  char magic[8];
  uint32_t version;
  uint32_t dtype;
  uint64_t count;
  uint64_t reserved;
};
static_assert(sizeof(Header) == kHeaderBytes);

Header make_header(ShardDtype dtype, uint64_t count, int64_t separator) {
  Header h{};
  std::memcpy(h.magic, kMagic, 8);
  h.version = kVersion;
  h.dtype = static_cast<uint32_t>(dtype);
  h.count = count;
  h.reserved = separator < 0 ? 0 : static_cast<uint64_t>(separator) + 1;
  return h;
}

}  // namespace

ShardWriter::ShardWriter(std::string path, ShardDtype dtype, int64_t separator)
    : path_(std::move(path)), tmp_(path_ + ".tmp"), dtype_(dtype), separator_(separator) {
  const int64_t max_id = dtype == ShardDtype::U16 ? 0xFFFF : 0xFFFFFFFFLL;
  if (separator > max_id)
    throw UsageError(str("bad argument #3 to 'ShardWriter' (separator ", separator, " does not fit uint",
                         static_cast<uint32_t>(dtype) * 8, ")"));
  file_ = std::fopen(tmp_.c_str(), "wb");
  if (!file_) throw Error(str("cannot write ", tmp_, ": ", std::strerror(errno)));
  const Header h = make_header(dtype_, 0, separator_);
  buf_.resize(kHeaderBytes);
  std::memcpy(buf_.data(), &h, kHeaderBytes);
}

ShardWriter::~ShardWriter() {
  if (file_) {
    std::fclose(file_);
    std::remove(tmp_.c_str());
  }
}

void ShardWriter::append(const std::vector<int32_t>& tokens) {
  MATHRL_CHECK(file_, path_, ": append after finish");
  const uint32_t bytes = static_cast<uint32_t>(dtype_);
  const int64_t max_id = dtype_ == ShardDtype::U16 ? 0xFFFF : 0xFFFFFFFFLL;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int64_t t = tokens[i];
    if (t < 0 || t > max_id)
      throw UsageError(str("bad argument #2 to 'write_token_shard' (token ", t, " at index ", count_ + i,
                           " does not fit uint", bytes * 8, ")"));
    const size_t at = buf_.size();
    buf_.resize(at + bytes);
    if (bytes == 2) {
      const uint16_t v = static_cast<uint16_t>(t);
      std::memcpy(&buf_[at], &v, 2);
    } else {
      const uint32_t v = static_cast<uint32_t>(t);
      std::memcpy(&buf_[at], &v, 4);
    }
  }
  count_ += tokens.size();
  if (buf_.size() >= (1u << 20)) flush();
}

void ShardWriter::append_document(const std::vector<int32_t>& tokens) {
  MATHRL_CHECK(separator_ >= 0, path_, ": append_document needs a separator");
  append(tokens);
  append({static_cast<int32_t>(separator_)});
}

void ShardWriter::flush() {
  if (!buf_.empty() && std::fwrite(buf_.data(), 1, buf_.size(), file_) != buf_.size())
    throw Error(str("cannot write ", tmp_, ": ", std::strerror(errno)));
  buf_.clear();
}

void ShardWriter::finish() {
  MATHRL_CHECK(file_, path_, ": finish twice");
  flush();
  const Header h = make_header(dtype_, count_, separator_);
  const bool ok = std::fseek(file_, 0, SEEK_SET) == 0 && std::fwrite(&h, 1, kHeaderBytes, file_) == kHeaderBytes;
  const bool closed = std::fclose(file_) == 0;
  file_ = nullptr;
  if (!ok || !closed || std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    std::remove(tmp_.c_str());
    throw Error(str("cannot write ", path_, ": ", std::strerror(errno)));
  }
}

void write_token_shard(const std::string& path, const std::vector<int32_t>& tokens, ShardDtype dtype,
                       int64_t separator) {
  ShardWriter w(path, dtype, separator);
  w.append(tokens);
  w.finish();
}

TokenShard::TokenShard(const std::string& path, int expected_dtype_bytes) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw DataError(str(path, ": cannot open token shard: ", std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw DataError(str(path, ": cannot stat token shard"));
  }
  map_size_ = static_cast<size_t>(st.st_size);
  if (map_size_ < kHeaderBytes) {
    ::close(fd);
    throw DataError(str(path, ": truncated token shard (", map_size_, " bytes, header needs ", kHeaderBytes, ")"));
  }
  map_ = ::mmap(nullptr, map_size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    throw DataError(str(path, ": cannot mmap token shard"));
  }
  Header h{};
  std::memcpy(&h, map_, kHeaderBytes);
  auto fail = [&](const std::string& msg) {
    ::munmap(map_, map_size_);
    map_ = nullptr;
    throw DataError(str(path, ": ", msg));
  };
  if (std::memcmp(h.magic, kMagic, 8) != 0) fail("not a mathrl token shard (bad magic)");
  if (h.version != kVersion) fail(str("unsupported token shard version ", h.version, " (expected ", kVersion, ")"));
  if (h.dtype != 2 && h.dtype != 4) fail(str("bad token shard dtype ", h.dtype, " (expected 2 or 4 bytes)"));
  if (expected_dtype_bytes != 0 && static_cast<int>(h.dtype) != expected_dtype_bytes)
    fail(str("token shard dtype is uint", h.dtype * 8, ", expected uint", expected_dtype_bytes * 8));
  if (h.count > (map_size_ - kHeaderBytes) / h.dtype)  // also guards the multiplication below
    fail(str("truncated token shard: header says ", h.count, " tokens, file has ", map_size_, " bytes"));
  const uint64_t need = kHeaderBytes + h.count * h.dtype;
  if (need != map_size_)
    fail(str(map_size_ < need ? "truncated" : "oversized", " token shard: header says ", h.count, " tokens (",
             need, " bytes), file has ", map_size_, " bytes"));
  if (h.reserved > (h.dtype == 2 ? 0x10000ULL : 0x100000000ULL))
    fail(str("bad token shard separator field ", h.reserved, " (does not fit uint", h.dtype * 8, ")"));
  dtype_ = static_cast<ShardDtype>(h.dtype);
  count_ = h.count;
  separator_ = static_cast<int64_t>(h.reserved) - 1;
  data_ = static_cast<const unsigned char*>(map_) + kHeaderBytes;
}

TokenShard::~TokenShard() {
  if (map_) ::munmap(map_, map_size_);
}

int32_t TokenShard::at(uint64_t i) const {
  MATHRL_CHECK(i < count_, path_, ": token index ", i, " out of range ", count_);
  if (dtype_ == ShardDtype::U16) {
    uint16_t v;
    std::memcpy(&v, data_ + i * 2, 2);
    return v;
  }
  uint32_t v;
  std::memcpy(&v, data_ + i * 4, 4);
  return static_cast<int32_t>(v);
}

void TokenShard::read(uint64_t begin, uint64_t n, std::vector<int32_t>& out) const {
  out.clear();
  if (begin >= count_) return;
  const uint64_t end = std::min<uint64_t>(count_, begin + n);
  out.resize(end - begin);
  if (dtype_ == ShardDtype::U16) {
    for (uint64_t i = begin; i < end; ++i) {
      uint16_t v;
      std::memcpy(&v, data_ + i * 2, 2);
      out[i - begin] = v;
    }
  } else {
    for (uint64_t i = begin; i < end; ++i) {
      uint32_t v;
      std::memcpy(&v, data_ + i * 4, 4);
      out[i - begin] = static_cast<int32_t>(v);
    }
  }
}

}  // namespace mathrl::data
