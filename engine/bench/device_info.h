#pragma once
// What a benchmark states about the machine: the device's name, its theoretical peak FLOP rate
// (and how that number was derived), and device memory in use. Peaks are estimates from public
// per-clock rates, not measurements; the formula travels with the number.
#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/backend.h"

namespace fer::bench {

struct PeakRate {
  double fp32_gflops = 0.0;  // FP32 FMA rate on the CUDA cores / SIMD units
  double tf32_gflops = 0.0;  // dense TF32 tensor-core rate; 0 when the device has none (or CPU)
  double bf16_gflops = 0.0;  // dense BF16 tensor-core rate; 0 when unknown
  std::string formula;       // "2 cores x 2.60 GHz x 32 FLOP/cycle (AVX-512 on Zen 4: ...)"
};

struct CpuInfo {
  std::string model;          // /proc/cpuinfo "model name"
  int logical_cpus = 0;       // CPUs this process may run on
  int physical_cores = 0;     // distinct (package, core) pairs among them
  int threads_used = 0;       // OpenMP threads the CPU backend runs
  double nominal_ghz = 0.0;   // max of cpufreq's cpuinfo_max_freq and /proc/cpuinfo "cpu MHz"
  // Clock measured with a chain of dependent integer adds (one per cycle) on every OpenMP thread
  // at once, the slowest thread's best of a few tries (x86-64 only; 0 elsewhere). Under turbo
  // this is what the cores actually run at while all of them are busy.
  double measured_ghz = 0.0;
  double ghz = 0.0;           // the clock the peak uses: measured when available, else nominal
  std::string simd;           // "avx512f+fma", "avx2+fma", "avx", "sse"
  int flops_per_cycle = 0;    // FP32 FLOPs per cycle per core assumed
  std::string flops_note;     // why that many
};
// cores used = min(physical cores, OpenMP threads); peak = cores x GHz x FLOPs/cycle.
// measure_clock: run the dependent-add loop (about 0.1 s) to find the all-core clock.
CpuInfo cpu_info(bool measure_clock);
// FER_CPU_FLOPS_PER_CYCLE in the environment overrides the per-cycle figure.
PeakRate cpu_peak(const CpuInfo& info);

struct GpuInfo {
  std::string name;
  int cc_major = 0, cc_minor = 0;
  int sms = 0;
  double ghz = 0.0;  // cudaDevAttrClockRate (peak SM clock)
  size_t total_bytes = 0;
  std::string driver, runtime;  // "13.0"
};
// False (and *why) without a CUDA build or device.
bool gpu_info(int ordinal, GpuInfo* info, std::string* why);
// peak = SMs x clock x per-SM FLOPs/clock for the compute capability (FP32: 2 x FP32 lanes;
// TF32/BF16: dense tensor-core rate, from NVIDIA's published per-SM figures).
PeakRate gpu_peak(const GpuInfo& info);

// Free device memory right now (cudaMemGetInfo); 0 without CUDA. Creates the primary context of
// the current device when none exists yet.
size_t gpu_free_bytes();

// Peak resident set size of this process (getrusage), bytes.
size_t process_peak_rss_bytes();

}  // namespace fer::bench
