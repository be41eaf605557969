#pragma once
// bfloat16 on the CPU: the rounding every bf16 op uses, what this CPU can do natively, and how
// the bf16 matrix ops (MathType::bf16 convolutions and dense layers) are computed.
//
// bfloat16 keeps FP32's 8 exponent bits and the top 7 of its 23 fraction bits (8 significand
// bits with the implicit one), so a finite FP32 value rounds to bf16 with relative error at most
// u = 2^-8 (half an ulp relative to the bottom of the binade; round to nearest, ties to even: the
// rounding oneDNN, PyTorch and CUDA's __float2bfloat16 use). A product of two bf16 values has at
// most 16 significand bits and is exact in FP32, so a bf16 op with FP32 accumulation differs from
// the FP32 op only by the rounding of its operands (and the accumulation order).
//
// Two ways to compute a bf16 op, same numbers up to accumulation order:
//  - native: oneDNN's bf16 primitives (AVX512-BF16 dot products or AMX tiles), the fast path;
//    needs a CPU with AVX512-BF16 or AMX-BF16 (cpu_bf16_support()).
//  - emulated: the operands rounded to bf16 in FP32 buffers, then the FP32 kernels. Slower than
//    plain FP32 (the rounding passes are extra work); it exists so that bf16 numerics (tests, CI
//    on any x86-64 CPU) can run where the hardware has no bf16. A shape oneDNN has no optimised
//    bf16 kernel for also takes this path.
#include <cstdint>
#include <string>

namespace fer::kernels::cpu {

// Round to nearest, ties to even; NaN stays NaN (quiet), infinities stay infinite, values that
// round past the largest bf16 become infinity (as in IEEE rounding).
inline uint16_t float_to_bf16(float f) {
  uint32_t u;
  __builtin_memcpy(&u, &f, sizeof u);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) return uint16_t((u >> 16) | 0x0040u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
inline float bf16_to_float(uint16_t h) {
  const uint32_t u = uint32_t(h) << 16;
  float f;
  __builtin_memcpy(&f, &u, sizeof f);
  return f;
}
inline float round_to_bf16(float f) { return bf16_to_float(float_to_bf16(f)); }

// y[i] = round_to_bf16(x[i]) for i < n (y may alias x); split over the OpenMP team for large n.
void round_to_bf16(const float* x, float* y, int64_t n);

// What this CPU offers for bf16 (CPUID, the OS's AVX-512/AMX state, and oneDNN's view).
struct Bf16Support {
  bool avx512_bf16 = false;   // CPUID.(7,1):EAX[5], AVX-512 state enabled by the OS
  bool amx_bf16 = false;      // CPUID.(7,0):EDX[22] (AMX-BF16) with AMX-TILE
  bool onednn_native = false; // oneDNN's effective ISA has bf16 instructions (avx512_core_bf16+)
  // True when bf16 ops run on bf16 instructions: oneDNN present and the CPU has one of the two.
  bool native() const { return onednn_native && (avx512_bf16 || amx_bf16); }
  // One line for messages: "AVX512-BF16 yes, AMX-BF16 no, oneDNN ISA avx512_core_bf16".
  std::string summary;
};
const Bf16Support& cpu_bf16_support();

// How MathType::bf16 ops are computed (process-wide). Initial value from the environment at first
// use: FER_CPU_BF16=auto|emulate (default auto: native where the CPU and oneDNN can, emulated for
// shapes they cannot).
enum class Bf16Impl { automatic, emulated };
void set_bf16_impl(Bf16Impl impl);
Bf16Impl bf16_impl();
// Whether a MathType::bf16 op would run natively under the current setting.
bool bf16_native_enabled();

}  // namespace fer::kernels::cpu
