// libFuzzer target for the native grader: the input is split at the first NUL (or in half) into a
// model output and a reference; grade() must return without crashing, hanging or leaking.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "reward/grader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view all(reinterpret_cast<const char*>(data), size);
  size_t cut = all.find('\0');
  if (cut == std::string_view::npos) cut = size / 2;
  std::string_view pred = all.substr(0, cut), gold = all.substr(cut < size ? cut + 1 : size);
  mathrl::grade(pred, gold);
  mathrl::ExtractOptions strict;
  strict.last_number_fallback = false;
  mathrl::grade(gold, pred, strict);
  return 0;
}
