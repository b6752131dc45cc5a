#include "common/tfevents.h"

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <unistd.h>

#include "common/error.h"

namespace mathrl {

namespace {

constexpr uint32_t kCastagnoliReflected = 0x82F63B78u;

std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int bit = 0; bit < 8; ++bit) c = (c & 1) ? (c >> 1) ^ kCastagnoliReflected : c >> 1;
    table[i] = c;
  }
  return table;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Protocol-buffer wire format, just the pieces Event needs.
void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void put_tag(std::string& out, int field, int wire_type) { put_varint(out, (uint64_t(field) << 3) | uint64_t(wire_type)); }
void put_fixed(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void put_double(std::string& out, int field, double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, 8);
  put_tag(out, field, 1);
  put_fixed(out, bits, 8);
}
void put_float(std::string& out, int field, float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  put_tag(out, field, 5);
  put_fixed(out, bits, 4);
}
void put_bytes(std::string& out, int field, std::string_view bytes) {
  put_tag(out, field, 2);
  put_varint(out, bytes.size());
  out.append(bytes);
}

// Event: wall_time = 1 (double), step = 2 (int64), file_version = 3 (string), summary = 5 (Summary).
std::string event_header(double wall_time, long long step) {
  std::string e;
  put_double(e, 1, wall_time);
  if (step != 0) {
    put_tag(e, 2, 0);
    put_varint(e, static_cast<uint64_t>(step));  // int64: negative steps take ten bytes, as protobuf does
  }
  return e;
}

}  // namespace

uint32_t crc32c(const void* data, size_t size, uint32_t crc) {
  static const std::array<uint32_t, 256> table = make_crc_table();
  const auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

uint32_t masked_crc32c(const void* data, size_t size) {
  uint32_t crc = crc32c(data, size);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

std::string tfrecord_frame(std::string_view data) {
  std::string out;
  put_fixed(out, data.size(), 8);
  uint32_t len_crc = masked_crc32c(out.data(), 8);
  put_fixed(out, len_crc, 4);
  out.append(data);
  put_fixed(out, masked_crc32c(data.data(), data.size()), 4);
  return out;
}

std::string encode_file_version_event(double wall_time) {
  std::string e = event_header(wall_time, 0);
  put_bytes(e, 3, "brain.Event:2");
  return e;
}

// Summary: repeated Value value = 1; Value: tag = 1 (string), simple_value = 2 (float).
std::string encode_scalars_event(double wall_time, long long step, const std::map<std::string, double>& scalars) {
  std::string summary;
  for (const auto& [tag, v] : scalars) {
    std::string value;
    put_bytes(value, 1, tag);
    put_float(value, 2, static_cast<float>(v));
    put_bytes(summary, 1, value);
  }
  std::string e = event_header(wall_time, step);
  put_bytes(e, 5, summary);
  return e;
}

bool tfevents_enabled() {
  const char* v = std::getenv("MATHRL_TFEVENTS");
  if (!v) return true;
  std::string s(v);
  return !(s == "0" || s == "off" || s == "false" || s == "no");
}

TfEventsWriter::~TfEventsWriter() { close(); }

void TfEventsWriter::open(const std::string& dir) {
  close();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error(str(dir, ": cannot create event directory: ", ec.message()));
  char host[256] = "localhost";
  if (::gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "localhost");
  host[sizeof host - 1] = '\0';
  double wall = now_seconds();
  // TensorBoard sorts a directory's files by name; the counter keeps two opens in one second apart.
  static std::atomic<int> counter{0};
  path_ = str(dir, "/events.out.tfevents.", static_cast<long long>(wall), ".", host, ".", ::getpid(), ".", counter++);
  file_ = std::fopen(path_.c_str(), "wb");
  if (!file_) throw Error(str(path_, ": cannot open event file: ", std::strerror(errno)));
  write_record(encode_file_version_event(wall));
}

void TfEventsWriter::write_scalars(long long step, const std::map<std::string, double>& scalars) {
  if (!file_) return;
  write_record(encode_scalars_event(now_seconds(), step, scalars));
}

void TfEventsWriter::write_record(const std::string& event) {
  std::string record = tfrecord_frame(event);
  if (std::fwrite(record.data(), 1, record.size(), file_) != record.size() || std::fflush(file_) != 0)
    throw Error(str(path_, ": cannot write event file: ", std::strerror(errno)));
}

void TfEventsWriter::close() {
  if (file_) std::fclose(file_);
  file_ = nullptr;
}

}  // namespace mathrl
