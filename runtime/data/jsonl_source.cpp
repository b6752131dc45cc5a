#include "data/jsonl_source.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>

#include <rapidjson/error/en.h>

#include "common/error.h"
#include "common/strings.h"

namespace mathrl::data {

JsonlSource::JsonlSource(std::string path, Mapper mapper, const Tokenizer& tokenizer, bool add_bos)
    : path_(std::move(path)), mapper_(std::move(mapper)), tokenizer_(tokenizer), add_bos_(add_bos) {
  const int fd = ::open(path_.c_str(), O_RDONLY);
  if (fd < 0) throw DataError(str(path_, ": cannot open JSONL source: ", std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw DataError(str(path_, ": not a regular file"));
  }
  map_size_ = static_cast<size_t>(st.st_size);
  if (map_size_ > 0) {
    map_ = ::mmap(nullptr, map_size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map_ == MAP_FAILED) {
      map_ = nullptr;
      ::close(fd);
      throw DataError(str(path_, ": cannot mmap: ", std::strerror(errno)));
    }
  }
  ::close(fd);
  const char* data = static_cast<const char*>(map_);
  size_t start = 0;
  uint32_t line = 1;
  while (start < map_size_) {
    const void* nl = std::memchr(data + start, '\n', map_size_ - start);
    size_t end = nl ? static_cast<size_t>(static_cast<const char*>(nl) - data) : map_size_;
    size_t len = end - start;
    if (len > 0 && data[start + len - 1] == '\r') --len;
    if (!trim(std::string_view(data + start, len)).empty()) {
      if (len > 0xFFFFFFFFu) throw DataError(str(path_, ":", line, ": line longer than 4 GiB"));
      offsets_.push_back(start);
      lengths_.push_back(static_cast<uint32_t>(len));
      lines_.push_back(line);
    }
    start = end + 1;
    ++line;
  }
}

JsonlSource::~JsonlSource() {
  if (map_) ::munmap(map_, map_size_);
}

std::string JsonlSource::locate(size_t i) const { return str(path_, ":", i < lines_.size() ? lines_[i] : 0); }

std::string JsonlSource::read(size_t i, Document& out) {
  MATHRL_CHECK(i < offsets_.size(), path_, ": record ", i, " out of range ", offsets_.size());
  std::string_view line(static_cast<const char*>(map_) + offsets_[i], lengths_[i]);
  if (!is_valid_utf8(line)) return "invalid UTF-8";
  rapidjson::Document doc;
  doc.Parse(line.data(), line.size());
  if (doc.HasParseError())
    return str("invalid JSON at offset ", doc.GetErrorOffset(), ": ", rapidjson::GetParseError_En(doc.GetParseError()));
  std::optional<Mapped> mapped;
  try {
    mapped = mapper_(doc, lines_[i]);
  } catch (const Error& e) {
    return e.what();
  }
  if (!mapped) return "missing field or wrong type (the mapping returned nothing)";
  if (!mapped->is_pair ? !is_valid_utf8(mapped->text)
                       : !(is_valid_utf8(mapped->prompt) && is_valid_utf8(mapped->response)))
    return "mapped text is not valid UTF-8";
  encode_mapped(tokenizer_, add_bos_, *mapped, out);
  return "";
}

}  // namespace mathrl::data
