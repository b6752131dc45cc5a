// TensorBoard event files without TensorFlow or protobuf: TFRecord framing (length, masked CRC32C
// of the length, payload, masked CRC32C of the payload) around hand-encoded `tensorflow.Event`
// messages. The first record carries file_version "brain.Event:2"; each later one a Summary of
// simple_value scalars, one per tag. `tensorboard --logdir runs/` reads the files.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <string_view>

namespace mathrl {

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven. `crc` continues a running value.
uint32_t crc32c(const void* data, size_t size, uint32_t crc = 0);
// TFRecord's masked CRC: rotate right by 15 and add 0xa282ead8 (so CRCs of CRCs stay useful).
uint32_t masked_crc32c(const void* data, size_t size);

// One TFRecord: uint64 length (little-endian), masked CRC of those 8 bytes, the data, masked CRC of the data.
std::string tfrecord_frame(std::string_view data);

// Serialized tensorflow.Event messages.
std::string encode_file_version_event(double wall_time);
std::string encode_scalars_event(double wall_time, long long step, const std::map<std::string, double>& scalars);

// False when $MATHRL_TFEVENTS is "0", "off", "false" or "no": runs then write metrics.jsonl only.
bool tfevents_enabled();

// Appends events to <dir>/events.out.tfevents.<unix time>.<host>.<pid>.<n>; flushed after each
// write so a killed run keeps what it logged. Not thread-safe (MetricsWriter serializes calls).
class TfEventsWriter {
 public:
  TfEventsWriter() = default;
  ~TfEventsWriter();
  TfEventsWriter(const TfEventsWriter&) = delete;
  TfEventsWriter& operator=(const TfEventsWriter&) = delete;

  // Creates the directory if needed, opens a new file and writes the file_version record.
  void open(const std::string& dir);
  // One Event at `step` holding every value as a scalar tagged by its name (NaN and inf kept).
  void write_scalars(long long step, const std::map<std::string, double>& scalars);
  void close();
  bool is_open() const { return file_ != nullptr; }
  const std::string& path() const { return path_; }

 private:
  void write_record(const std::string& event);
  FILE* file_ = nullptr;
  std::string path_;
};

}  // namespace mathrl
