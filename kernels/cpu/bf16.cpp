#include "kernels/cpu/bf16.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define FER_X86 1
#endif

#ifdef FER_HAVE_ONEDNN
#include <dnnl.h>
#endif

namespace fer::kernels::cpu {

void round_to_bf16(const float* x, float* y, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > (int64_t(1) << 16))
  for (int64_t i = 0; i < n; ++i) {
    // The branch-free form of float_to_bf16 for finite values (NaN inputs do not occur here:
    // a NaN in training is caught by the loss check, and it stays a NaN through this anyway
    // unless its payload sits only in the low 16 bits; those are kept quiet by the check).
    uint32_t u;
    __builtin_memcpy(&u, &x[i], sizeof u);
    const bool nan = (u & 0x7fffffffu) > 0x7f800000u;
    const uint32_t r = nan ? (u | 0x00400000u) : u + 0x7fffu + ((u >> 16) & 1u);
    const uint32_t out = r & 0xffff0000u;
    __builtin_memcpy(&y[i], &out, sizeof out);
  }
}

namespace {

#ifdef FER_X86
uint64_t xgetbv0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (uint64_t(edx) << 32) | eax;
}
#endif

#ifdef FER_HAVE_ONEDNN
std::string onednn_isa_name(dnnl_cpu_isa_t isa) {
  switch (isa) {
    case dnnl_cpu_isa_all: return "all";
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    default: break;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%x", unsigned(isa));
  return buf;
}
#endif

Bf16Support detect() {
  Bf16Support s;
#ifdef FER_X86
  unsigned a, b, c, d;
  bool avx512_os = false, amx_os = false;
  if (__get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 27))) {  // OSXSAVE: XGETBV usable
    const uint64_t xcr0 = xgetbv0();
    avx512_os = (xcr0 & 0xe6) == 0xe6;              // SSE, AVX, opmask, ZMM_Hi256, Hi16_ZMM
    amx_os = (xcr0 & (3u << 17)) == (3u << 17);    // XTILECFG, XTILEDATA
  }
  bool avx512f = false, amx_tile = false, amx_bf16 = false, avx512_bf16 = false;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
    avx512f = b & (1u << 16);
    amx_bf16 = d & (1u << 22);
    amx_tile = d & (1u << 24);
    const unsigned max_sub = a;
    if (max_sub >= 1 && __get_cpuid_count(7, 1, &a, &b, &c, &d)) avx512_bf16 = a & (1u << 5);
  }
  s.avx512_bf16 = avx512f && avx512_bf16 && avx512_os;
  s.amx_bf16 = amx_bf16 && amx_tile && amx_os;
#endif
  std::string isa = "none (built without oneDNN)";
#ifdef FER_HAVE_ONEDNN
  const dnnl_cpu_isa_t effective = dnnl_get_effective_cpu_isa();
  isa = onednn_isa_name(effective);
  // oneDNN's ISA values are nested bit sets: every ISA includes the bits of those below it.
  s.onednn_native = (unsigned(effective) & unsigned(dnnl_cpu_isa_avx512_core_bf16)) ==
                    unsigned(dnnl_cpu_isa_avx512_core_bf16);
#endif
  s.summary = std::string("AVX512-BF16 ") + (s.avx512_bf16 ? "yes" : "no") + ", AMX-BF16 " +
              (s.amx_bf16 ? "yes" : "no") + ", oneDNN ISA " + isa;
  return s;
}

Bf16Impl impl_from_environment() {
  const char* env = std::getenv("FER_CPU_BF16");
  const std::string name = env ? env : "auto";
  if (name.empty() || name == "auto") return Bf16Impl::automatic;
  if (name == "emulate") return Bf16Impl::emulated;
  throw std::invalid_argument("FER_CPU_BF16 must be auto or emulate, not '" + name + "'");
}

std::atomic<int>& impl_setting() {
  static std::atomic<int> setting{int(impl_from_environment())};
  return setting;
}

}  // namespace

const Bf16Support& cpu_bf16_support() {
  static const Bf16Support support = detect();
  return support;
}

void set_bf16_impl(Bf16Impl impl) { impl_setting().store(int(impl)); }
Bf16Impl bf16_impl() { return Bf16Impl(impl_setting().load()); }
bool bf16_native_enabled() {
  return bf16_impl() == Bf16Impl::automatic && cpu_bf16_support().native();
}

}  // namespace fer::kernels::cpu
