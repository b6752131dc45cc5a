// The x86 instruction sets the CPU loops (decode attention, the fused layer ops) pick from at run
// time: the best the CPU has, at most a cap, so that tests take every path a machine has. The paths
// differ by rounding only (FMA, lane widths); each gives the same bits on every run.
#pragma once

namespace mathrl::kernels::cpu {

enum class CpuIsa { baseline = 0, avx2 = 1, avx512 = 2 };  // avx2 includes FMA

CpuIsa detected_cpu_isa();
CpuIsa active_cpu_isa();           // the detected set, at most the cap
CpuIsa limit_cpu_isa(CpuIsa cap);  // returns the previous cap (default: no cap)

}  // namespace mathrl::kernels::cpu
