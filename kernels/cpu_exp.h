// exp(x) for the CPU loops, in plain arithmetic the compiler vectorizes (std::exp is a scalar call):
// x = n ln2 + r with |r| <= ln2/2, exp(r) by its Taylor series to r^7 (relative error below 2e-7),
// times 2^n built in the exponent bits. x is clamped to [-87, 88]: below, ~1e-38 rather than 0;
// above, ~1.6e38 rather than inf (silu and sigmoid stay finite and exact to rounding there).
#pragma once
#include <cstdint>
#include <cstring>

namespace mathrl::kernels::cpu {

[[gnu::always_inline]] inline float exp_clamped(float x) {
  constexpr float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693145751953125f, kLn2Lo = 1.42860682030941723212e-6f;
  constexpr float kRound = 12582912.f;  // 1.5 * 2^23: adding and subtracting it rounds to an integer
  // Conditional moves (std::min/max take references and stop GCC's vectorizer: "control flow").
  x = x < -87.f ? -87.f : x;
  x = x > 88.f ? 88.f : x;
  const float n = (x * kLog2e + kRound) - kRound;
  const float r = (x - n * kLn2Hi) - n * kLn2Lo;
  float p = 1.f / 5040;
  p = p * r + 1.f / 720;
  p = p * r + 1.f / 120;
  p = p * r + 1.f / 24;
  p = p * r + 1.f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

}  // namespace mathrl::kernels::cpu
