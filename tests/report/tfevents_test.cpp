// TensorBoard event files: CRC-32C against published vectors, and files read back by a decoder
// written here from the TFRecord and protobuf specs (not the writer's code).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "common/log.h"
#include "common/tfevents.h"
#include "support/test_support.h"

namespace mathrl {
namespace {

// Bit-at-a-time CRC-32C (no table), the definition the table must reproduce.
uint32_t crc32c_bitwise(const std::string& s) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char c : s) {
    crc ^= c;
    for (int i = 0; i < 8; ++i) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
  }
  return ~crc;
}

uint32_t unmask(uint32_t masked) {
  uint32_t rot = masked - 0xa282ead8u;
  return (rot << 15) | (rot >> 17);
}

struct Reader {
  const std::string& s;
  size_t pos = 0;
  uint64_t fixed(int bytes) {
    if (pos + bytes > s.size()) throw std::runtime_error("truncated fixed field");
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= uint64_t(static_cast<unsigned char>(s[pos + i])) << (8 * i);
    pos += bytes;
    return v;
  }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos >= s.size()) throw std::runtime_error("truncated varint");
      unsigned char b = static_cast<unsigned char>(s[pos++]);
      v |= uint64_t(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    throw std::runtime_error("varint too long");
  }
  std::string bytes() {
    uint64_t n = varint();
    if (pos + n > s.size()) throw std::runtime_error("truncated length-delimited field");
    std::string out = s.substr(pos, n);
    pos += n;
    return out;
  }
  bool done() const { return pos >= s.size(); }
};

struct Event {
  double wall_time = 0;
  long long step = 0;
  std::string file_version;
  std::map<std::string, float> scalars;
};

Event decode_event(const std::string& data) {
  Event e;
  Reader r{data};
  while (!r.done()) {
    uint64_t key = r.varint();
    int field = int(key >> 3), wire = int(key & 7);
    if (field == 1 && wire == 1) {
      uint64_t bits = r.fixed(8);
      std::memcpy(&e.wall_time, &bits, 8);
    } else if (field == 2 && wire == 0) {
      e.step = static_cast<long long>(r.varint());
    } else if (field == 3 && wire == 2) {
      e.file_version = r.bytes();
    } else if (field == 5 && wire == 2) {
      std::string summary = r.bytes();
      Reader sr{summary};
      while (!sr.done()) {
        uint64_t skey = sr.varint();
        if (skey != ((1u << 3) | 2)) throw std::runtime_error("unexpected Summary field");
        std::string value = sr.bytes();
        Reader vr{value};
        std::string tag;
        float v = NAN;
        bool has_value = false;
        while (!vr.done()) {
          uint64_t vkey = vr.varint();
          if (vkey == ((1u << 3) | 2)) {
            tag = vr.bytes();
          } else if (vkey == ((2u << 3) | 5)) {
            uint32_t bits = static_cast<uint32_t>(vr.fixed(4));
            std::memcpy(&v, &bits, 4);
            has_value = true;
          } else {
            throw std::runtime_error("unexpected Summary.Value field");
          }
        }
        if (!has_value) throw std::runtime_error("Summary.Value without simple_value");
        e.scalars[tag] = v;
      }
    } else {
      throw std::runtime_error("unexpected Event field " + std::to_string(field));
    }
  }
  return e;
}

// Parses TFRecord framing, checking both CRCs of every record.
std::vector<Event> read_events(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<Event> events;
  Reader r{s};
  while (!r.done()) {
    std::string len_bytes = s.substr(r.pos, 8);
    uint64_t len = r.fixed(8);
    uint32_t len_crc = static_cast<uint32_t>(r.fixed(4));
    EXPECT_EQ(unmask(len_crc), crc32c_bitwise(len_bytes)) << "length CRC of record " << events.size();
    if (r.pos + len + 4 > s.size()) throw std::runtime_error("truncated record");
    std::string data = s.substr(r.pos, len);
    r.pos += len;
    uint32_t data_crc = static_cast<uint32_t>(r.fixed(4));
    EXPECT_EQ(unmask(data_crc), crc32c_bitwise(data)) << "data CRC of record " << events.size();
    events.push_back(decode_event(data));
  }
  return events;
}

std::vector<std::string> event_files(const std::string& dir) {
  std::vector<std::string> files;
  if (!std::filesystem::is_directory(dir)) return files;
  for (const auto& entry : std::filesystem::directory_iterator(dir))
    if (entry.path().filename().string().rfind("events.out.tfevents.", 0) == 0) files.push_back(entry.path().string());
  return files;
}

TEST(Crc32c, KnownVectors) {
  // RFC 3720 (iSCSI) appendix B.4 and the common "123456789" check value.
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  std::string zeros(32, '\0'), ones(32, '\xFF'), up(32, 0), down(32, 0);
  for (int i = 0; i < 32; ++i) {
    up[i] = static_cast<char>(i);
    down[i] = static_cast<char>(31 - i);
  }
  EXPECT_EQ(crc32c(zeros.data(), 32), 0x8A9136AAu);
  EXPECT_EQ(crc32c(ones.data(), 32), 0x62A8AB43u);
  EXPECT_EQ(crc32c(up.data(), 32), 0x46DD794Eu);
  EXPECT_EQ(crc32c(down.data(), 32), 0x113FDB5Cu);
  EXPECT_EQ(crc32c("", 0), 0u);
  // Continuing a running CRC equals one pass over the concatenation.
  EXPECT_EQ(crc32c("6789", 4, crc32c("12345", 5)), 0xE3069283u);
}

TEST(Crc32c, TableMatchesBitwiseDefinition) {
  std::string s;
  for (int i = 0; i < 1000; ++i) {
    s.push_back(static_cast<char>((i * 131 + 7) & 0xFF));
    if (i % 97 == 0) EXPECT_EQ(crc32c(s.data(), s.size()), crc32c_bitwise(s)) << "length " << s.size();
  }
  uint32_t c = crc32c(s.data(), s.size());
  EXPECT_EQ(masked_crc32c(s.data(), s.size()), ((c >> 15) | (c << 17)) + 0xa282ead8u);
}

TEST(TfEvents, WriterRecordsReadBack) {
  test::TempDir dir;
  std::string path;
  {
    TfEventsWriter w;
    w.open(dir.file("tb"));
    path = w.path();
    w.write_scalars(1, {{"loss", 2.5}, {"rl/reward", 0.125}});
    w.write_scalars(300, {{"loss", 1.75}});
    w.write_scalars(-2, {{"neg", -3.0}});
    w.write_scalars(7, {{"nan", NAN}, {"big", 1e30}});
  }
  EXPECT_NE(path.find("/tb/events.out.tfevents."), std::string::npos) << path;
  auto events = read_events(path);
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[0].file_version, "brain.Event:2");
  EXPECT_GT(events[0].wall_time, 1.6e9);
  EXPECT_TRUE(events[0].scalars.empty());
  EXPECT_EQ(events[1].step, 1);
  EXPECT_FLOAT_EQ(events[1].scalars.at("loss"), 2.5f);
  EXPECT_FLOAT_EQ(events[1].scalars.at("rl/reward"), 0.125f);
  EXPECT_GE(events[1].wall_time, events[0].wall_time);
  EXPECT_EQ(events[2].step, 300);  // a two-byte varint
  EXPECT_EQ(events[2].scalars.size(), 1u);
  EXPECT_EQ(events[3].step, -2);
  EXPECT_FLOAT_EQ(events[3].scalars.at("neg"), -3.0f);
  EXPECT_TRUE(std::isnan(events[4].scalars.at("nan")));
  EXPECT_FLOAT_EQ(events[4].scalars.at("big"), 1e30f);
}

TEST(TfEvents, MetricsWriterWritesEventsBesideJsonl) {
  test::TempDir dir;
  {
    MetricsWriter m;
    m.open(dir.file("metrics.jsonl"), false);
    m.write(1, {{"loss", 3.0}});
    m.write(2, {{"loss", 2.0}, {"acc", 0.5}});
    EXPECT_EQ(std::filesystem::path(m.events_path()).parent_path(), std::filesystem::path(dir.path()));
  }
  auto files = event_files(dir.path());
  ASSERT_EQ(files.size(), 1u);
  auto events = read_events(files[0]);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[2].step, 2);
  EXPECT_FLOAT_EQ(events[2].scalars.at("acc"), 0.5f);
  EXPECT_FLOAT_EQ(events[1].scalars.at("loss"), 3.0f);

  // Another rank's metrics go to their own directory (a separate TensorBoard run).
  {
    MetricsWriter m;
    m.open(dir.file("metrics.rank3.jsonl"), false);
    m.write(5, {{"loss", 1.0}});
  }
  EXPECT_EQ(event_files(dir.path()).size(), 1u);
  auto rank_files = event_files(dir.file("rank3"));
  ASSERT_EQ(rank_files.size(), 1u);
  EXPECT_EQ(read_events(rank_files[0]).back().step, 5);
}

TEST(TfEvents, TurnedOff) {
  test::TempDir dir;
  {
    MetricsWriter m;
    m.open(dir.file("metrics.jsonl"), false, /*tensorboard=*/false);
    m.write(1, {{"loss", 3.0}});
    EXPECT_EQ(m.events_path(), "");
  }
  ::setenv("MATHRL_TFEVENTS", "0", 1);
  {
    MetricsWriter m;
    m.open(dir.file("metrics.jsonl"), false);
    m.write(1, {{"loss", 3.0}});
  }
  ::unsetenv("MATHRL_TFEVENTS");
  EXPECT_TRUE(event_files(dir.path()).empty());
  EXPECT_TRUE(std::filesystem::exists(dir.file("metrics.jsonl")));
}

}  // namespace
}  // namespace mathrl
