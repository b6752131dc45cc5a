#include "cpu_isa.h"

#include <algorithm>
#include <atomic>

namespace mathrl::kernels::cpu {

namespace {
std::atomic<int> isa_cap{static_cast<int>(CpuIsa::avx512)};
}  // namespace

CpuIsa detected_cpu_isa() {
  static const CpuIsa isa = [] {
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq"))
      return CpuIsa::avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return CpuIsa::avx2;
    return CpuIsa::baseline;
  }();
  return isa;
}

CpuIsa active_cpu_isa() { return static_cast<CpuIsa>(std::min(static_cast<int>(detected_cpu_isa()), isa_cap.load())); }

CpuIsa limit_cpu_isa(CpuIsa cap) { return static_cast<CpuIsa>(isa_cap.exchange(static_cast<int>(cap))); }

}  // namespace mathrl::kernels::cpu
