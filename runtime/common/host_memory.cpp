#include "common/host_memory.h"

#include <cstdlib>
#include <cstring>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace mathrl {

void tune_host_allocator() {
  const char* keep = std::getenv("MATHRL_KEEP_MALLOC");
  if (keep && std::strcmp(keep, "1") == 0) return;
#if defined(__GLIBC__)
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's upper limit on 64-bit
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

}  // namespace mathrl
