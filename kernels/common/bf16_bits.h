#pragma once
// float <-> bfloat16 bit patterns, one definition for host and device: the CUDA cast kernels
// (kernels/cuda/cast.cu) use these very functions, and the host tests check them against the CPU
// backend's rounding (kernels/cpu/bf16.h), so both backends feed their bf16 matrix ops the same
// operands bit for bit.
//
// bfloat16 is FP32's top 16 bits: sign, the 8 exponent bits, 7 fraction bits (8 significand bits
// with the implicit one). Rounding is to nearest, ties to even (the rule of oneDNN, PyTorch and
// CUDA's __float2bfloat16_rn): add 0x7fff plus the lowest kept bit, then truncate. NaN stays a
// (quiet) NaN with its sign and top payload bits; values that round past the largest bf16 become
// infinity, as IEEE rounding does.
#include <cstdint>
#include <cstring>

#include "kernels/common/host_device.h"

namespace fer::kernels {

FER_HD uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

FER_HD float float_from_bits(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

// Round-to-nearest-even bf16 bits of f.
FER_HD uint16_t bf16_bits_from_float(float f) {
  uint32_t u = float_bits(f);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) return uint16_t((u >> 16) | 0x0040u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

// The FP32 value of bf16 bits h (exact: every bf16 is an FP32).
FER_HD float float_from_bf16_bits(uint16_t h) { return float_from_bits(uint32_t(h) << 16); }

}  // namespace fer::kernels
