// libFuzzer target for the safetensors header parser: any bytes must give a header or a DataError,
// never a crash, hang or out-of-bounds read. Build with -DMATHRL_FUZZ=ON and clang.
#include <cstddef>
#include <cstdint>

#include "common/error.h"
#include "model/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    // The file size as given, and as if the file were longer than the bytes we hold.
    mathrl::model::parse_safetensors_header(data, size, size, "fuzz");
    mathrl::model::parse_safetensors_header(data, size, static_cast<uint64_t>(size) * 2 + 8, "fuzz");
  } catch (const mathrl::DataError&) {
  }
  return 0;
}
