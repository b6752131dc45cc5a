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
}  // namespace

void write_token_shard(const std::string& path, const std::vector<int32_t>& tokens, ShardDtype dtype) {
  const uint32_t bytes = static_cast<uint32_t>(dtype);
  const int64_t max_id = dtype == ShardDtype::U16 ? 0xFFFF : 0xFFFFFFFFLL;
  std::vector<unsigned char> buf(kHeaderBytes + tokens.size() * bytes);
  Header h{};
  std::memcpy(h.magic, kMagic, 8);
  h.version = kVersion;
  h.dtype = bytes;
  h.count = tokens.size();
  std::memcpy(buf.data(), &h, kHeaderBytes);
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int64_t t = tokens[i];
    if (t < 0 || t > max_id)
      throw UsageError(str("bad argument #2 to 'write_token_shard' (token ", t, " at index ", i,
                           " does not fit uint", bytes * 8, ")"));
    if (bytes == 2) {
      uint16_t v = static_cast<uint16_t>(t);
      std::memcpy(&buf[kHeaderBytes + i * 2], &v, 2);
    } else {
      uint32_t v = static_cast<uint32_t>(t);
      std::memcpy(&buf[kHeaderBytes + i * 4], &v, 4);
    }
  }
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw Error(str("cannot write ", tmp, ": ", std::strerror(errno)));
  const bool ok = std::fwrite(buf.data(), 1, buf.size(), f) == buf.size();
  const bool closed = std::fclose(f) == 0;
  if (!ok || !closed || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Error(str("cannot write ", path, ": ", std::strerror(errno)));
  }
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
  const uint64_t need = kHeaderBytes + h.count * h.dtype;
  if (need != map_size_)
    fail(str(map_size_ < need ? "truncated" : "oversized", " token shard: header says ", h.count, " tokens (",
             need, " bytes), file has ", map_size_, " bytes"));
  dtype_ = static_cast<ShardDtype>(h.dtype);
  count_ = h.count;
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
  out.reserve(end - begin);
  for (uint64_t i = begin; i < end; ++i) out.push_back(at(i));
}

}  // namespace mathrl::data
