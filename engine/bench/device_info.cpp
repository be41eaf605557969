#include "engine/bench/device_info.h"

#include <omp.h>
#include <sched.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <utility>

#include "kernels/cpu/bf16.h"

#if FER_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace fer::bench {
namespace {

std::string cpuinfo_field(const std::string& key) {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, key.size(), key) != 0) continue;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string v = line.substr(colon + 1);
    v.erase(0, v.find_first_not_of(" \t"));
    return v;
  }
  return "";
}

long read_long(const std::string& path, long fallback) {
  std::ifstream in(path);
  long v = fallback;
  if (in >> v) return v;
  return fallback;
}

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

#if FER_HAVE_CUDA
std::string version_text(int v) {  // 13000 -> "13.0"
  return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}
#endif

// GHz of this thread: a loop of 32 dependent adds per iteration takes 32 cycles per iteration.
double add_chain_ghz() {
#if defined(__x86_64__)
  double best = 0.0;
  for (int attempt = 0; attempt < 5; ++attempt) {
    uint64_t x = 0, n = 400000;  // 12.8 M cycles, a few milliseconds
    const auto t0 = std::chrono::steady_clock::now();
    asm volatile(
        ".p2align 4\n"
        "1:\n\t"
        ".rept 32\n\t"
        "add $1, %0\n\t"
        ".endr\n\t"
        "dec %1\n\t"
        "jnz 1b\n"
        : "+r"(x), "+r"(n)
        :
        : "cc");
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s > 0) best = std::max(best, 32.0 * 400000.0 / s / 1e9);
  }
  return best;
#else
  return 0.0;
#endif
}

}  // namespace

CpuInfo cpu_info(bool measure_clock) {
  CpuInfo info;
  info.model = cpuinfo_field("model name");
  if (info.model.empty()) info.model = "unknown CPU";

  cpu_set_t set;
  CPU_ZERO(&set);
  std::set<std::pair<long, long>> cores;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (!CPU_ISSET(cpu, &set)) continue;
      ++info.logical_cpus;
      const std::string topo = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
      cores.insert({read_long(topo + "physical_package_id", 0), read_long(topo + "core_id", cpu)});
    }
  }
  info.physical_cores = cores.empty() ? std::max(1, info.logical_cpus) : int(cores.size());
  info.threads_used = omp_get_max_threads();

  const double max_khz = double(read_long("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", 0));
  const double mhz = std::atof(cpuinfo_field("cpu MHz").c_str());
  info.nominal_ghz = std::max(max_khz / 1e6, mhz / 1e3);
  if (measure_clock) {
    double slowest = 1e30;
#pragma omp parallel reduction(min : slowest)
    slowest = std::min(slowest, add_chain_ghz());
    if (slowest > 0 && slowest < 1e29) info.measured_ghz = slowest;
  }
  info.ghz = info.measured_ghz > 0 ? info.measured_ghz : info.nominal_ghz;

  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f");
  const bool avx2 = __builtin_cpu_supports("avx2");
  const bool fma = __builtin_cpu_supports("fma");
  const bool avx = __builtin_cpu_supports("avx");
  const bool amd = __builtin_cpu_is("amd");
  const int family = std::atoi(cpuinfo_field("cpu family").c_str());
  if (avx512) {
    info.simd = "avx512f+fma";
    if (amd && family < 0x1a) {
      info.flops_per_cycle = 32;
      info.flops_note = "AVX-512 on AMD Zen 4: 512-bit FMAs issue as two 256-bit halves on 2 FMA pipes, "
                        "2 x 8 lanes x 2 FLOP";
    } else {
      info.flops_per_cycle = 64;
      info.flops_note = "AVX-512 with 2 FMA units: 2 x 16 lanes x 2 FLOP (parts with one 512-bit FMA "
                        "unit reach half)";
    }
  } else if (avx2 && fma) {
    info.simd = "avx2+fma";
    info.flops_per_cycle = 32;
    info.flops_note = "AVX2 with 2 FMA units: 2 x 8 lanes x 2 FLOP";
  } else if (avx) {
    info.simd = "avx";
    info.flops_per_cycle = 16;
    info.flops_note = "AVX without FMA: one 8-lane add + one 8-lane multiply";
  } else {
    info.simd = "sse";
    info.flops_per_cycle = 8;
    info.flops_note = "SSE: one 4-lane add + one 4-lane multiply";
  }
  if (const char* env = std::getenv("FER_CPU_FLOPS_PER_CYCLE")) {
    const int v = std::atoi(env);
    if (v > 0) {
      info.flops_per_cycle = v;
      info.flops_note = "set by FER_CPU_FLOPS_PER_CYCLE";
    }
  }
  return info;
}

PeakRate cpu_peak(const CpuInfo& info) {
  PeakRate p;
  const int cores = std::max(1, std::min(info.physical_cores, info.threads_used));
  p.fp32_gflops = cores * info.ghz * info.flops_per_cycle;
  p.formula = std::to_string(cores) + " cores x " + fixed(info.ghz, 2) + " GHz x " +
              std::to_string(info.flops_per_cycle) + " FP32 FLOP/cycle/core = " +
              fixed(p.fp32_gflops, 1) + " GFLOP/s (" + info.flops_note +
              "; cores = min(physical cores, OpenMP threads); clock = " +
              (info.measured_ghz > 0 ? "measured all-core clock (dependent-add loop on every thread; nominal " +
                                           fixed(info.nominal_ghz, 2) + " GHz)"
                                     : std::string("nominal, turbo not measured")) +
              ")";
  // bf16: AMX-BF16 tiles do 1024 bf16 FLOP per cycle per core (Intel's figure for Sapphire
  // Rapids' TMUL); AVX512-BF16's VDPBF16PS does two multiply-adds per FP32 lane where an FMA does
  // one, at the FMA's issue rate: twice the FP32 rate.
  const auto& bf16 = kernels::cpu::cpu_bf16_support();
  if (bf16.amx_bf16) {
    p.bf16_gflops = cores * info.ghz * 1024;
    p.formula += "; bf16: " + std::to_string(cores) + " cores x " + fixed(info.ghz, 2) +
                 " GHz x 1024 AMX-BF16 FLOP/cycle/core = " + fixed(p.bf16_gflops, 1) + " GFLOP/s";
  } else if (bf16.avx512_bf16) {
    p.bf16_gflops = 2 * p.fp32_gflops;
    p.formula += "; bf16: 2 x the FP32 rate (AVX512-BF16 VDPBF16PS: 2 multiply-adds per FP32 lane) = " +
                 fixed(p.bf16_gflops, 1) + " GFLOP/s";
  }
  return p;
}

bool gpu_info(int ordinal, GpuInfo* info, std::string* why) {
#if FER_HAVE_CUDA
  if (!cuda_device_available(why)) return false;
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, ordinal) != cudaSuccess) {
    cudaGetLastError();
    if (why) *why = "cudaGetDeviceProperties failed for device " + std::to_string(ordinal);
    return false;
  }
  info->name = prop.name;
  info->cc_major = prop.major;
  info->cc_minor = prop.minor;
  info->sms = prop.multiProcessorCount;
  info->total_bytes = prop.totalGlobalMem;
  int khz = 0;
  cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, ordinal);
  info->ghz = khz / 1e6;
  int v = 0;
  cudaDriverGetVersion(&v);
  info->driver = version_text(v);
  cudaRuntimeGetVersion(&v);
  info->runtime = version_text(v);
  return true;
#else
  (void)ordinal;
  (void)info;
  return cuda_device_available(why);
#endif
}

PeakRate gpu_peak(const GpuInfo& g) {
  // FP32 lanes per SM by compute capability (each lane: one FMA = 2 FLOP per clock).
  const int cc = g.cc_major * 10 + g.cc_minor;
  int fp32_lanes = 128;
  if (cc == 60 || (cc >= 70 && cc <= 80)) fp32_lanes = 64;
  // Dense tensor-core FLOP per clock per SM (NVIDIA's published figures divided by SMs x boost
  // clock). GA10x/AD10x workstation and data-centre parts; GeForce parts run TF32 at half.
  int tf32 = 0, bf16 = 0;
  std::string tc_note;
  if (cc == 80) {
    tf32 = 1024, bf16 = 2048, tc_note = "A100-class";
  } else if (cc == 86 || cc == 87 || cc == 89) {
    tf32 = 512, bf16 = 1024, tc_note = "GA10x/AD10x professional parts; GeForce runs TF32 at half";
  } else if (cc == 90) {
    tf32 = 2048, bf16 = 4096, tc_note = "H100/H200";
  } else if (cc == 100 || cc == 103) {
    tf32 = 4096, bf16 = 8192, tc_note = "B200-class, approximate";
  }
  PeakRate p;
  const double clocks = g.sms * g.ghz;  // G SM-clocks per second
  p.fp32_gflops = clocks * 2.0 * fp32_lanes;
  p.tf32_gflops = clocks * tf32;
  p.bf16_gflops = clocks * bf16;
  p.formula = std::to_string(g.sms) + " SMs x " + fixed(g.ghz, 3) + " GHz x " +
              std::to_string(2 * fp32_lanes) + " FP32 FLOP/clock/SM (" + std::to_string(fp32_lanes) +
              " FMA lanes, sm_" + std::to_string(cc) + ") = " + fixed(p.fp32_gflops, 0) + " GFLOP/s";
  if (tf32) {
    p.formula += "; TF32 tensor cores: x " + std::to_string(tf32) + " FLOP/clock/SM = " +
                 fixed(p.tf32_gflops, 0) + " GFLOP/s, BF16 x " + std::to_string(bf16) + " = " +
                 fixed(p.bf16_gflops, 0) + " GFLOP/s (dense, " + tc_note +
                 "); clock = cudaDevAttrClockRate (max boost; sustained clocks are lower)";
  } else {
    p.formula += "; no tensor-core rate on record for sm_" + std::to_string(cc);
  }
  return p;
}

size_t gpu_free_bytes() {
#if FER_HAVE_CUDA
  size_t free_bytes = 0, total = 0;
  if (cudaMemGetInfo(&free_bytes, &total) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return free_bytes;
#else
  return 0;
#endif
}

size_t process_peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return size_t(u.ru_maxrss) * 1024;  // Linux reports kilobytes
}

}  // namespace fer::bench
