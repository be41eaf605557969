#include "engine/backend.h"

#include <chrono>

#include "engine/error.h"

#if FER_HAVE_CUDA
#include <cuda_runtime.h>

#endif

namespace fer {

const char* device_name(DeviceKind kind) { return kind == DeviceKind::cuda ? "cuda" : "cpu"; }

std::string Backend::precision_unsupported(Precision p) const {
  switch (p) {
    case Precision::fp32: return "";
    case Precision::tf32:
      return std::string("tf32 is the TF32 tensor-core math of NVIDIA GPUs (sm_80 and later); the ") +
             device_name(kind()) + " backend has none: use fp32 (or bf16)";
    case Precision::bf16:
      return std::string("bf16 is not implemented on the ") + device_name(kind()) + " backend";
  }
  return "unknown precision";
}

// ---- synchronized BatchNormalization: the CPU backend's alone so far ----
void Backend::batchnorm_sums(const BatchNormShape&, const float*, const float*, double*) {
  throw DeviceError(std::string("synchronized BatchNormalization is not implemented on the ") + device_name(kind()) +
                    " backend");
}
void Backend::batchnorm_backward_sums(const BatchNormShape& s, const float*, const float*, const float*, double*) {
  batchnorm_sums(s, nullptr, nullptr, nullptr);
}
void Backend::batchnorm_backward_apply(const BatchNormShape& s, const float*, const float*, const float*,
                                       const float*, const float*, const float*, float*) {
  batchnorm_sums(s, nullptr, nullptr, nullptr);
}

// ---- timers: the host clock after synchronize(); CudaBackend overrides them with CUDA events ----
namespace {
struct HostTimer {
  std::chrono::steady_clock::time_point at{};
};
}  // namespace

void* Backend::timer_create() {
  return new HostTimer{};
}

void Backend::timer_record(void* timer) {
  synchronize();
  static_cast<HostTimer*>(timer)->at = std::chrono::steady_clock::now();
}

float Backend::timer_elapsed_ms(void* a, void* b) {
  const auto d = static_cast<HostTimer*>(b)->at - static_cast<HostTimer*>(a)->at;
  return std::chrono::duration<float, std::milli>(d).count();
}

void Backend::timer_destroy(void* timer) {
  delete static_cast<HostTimer*>(timer);
}

bool cuda_device_available(std::string* why_not) {
#if FER_HAVE_CUDA
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    if (why_not) *why_not = std::string("cudaGetDeviceCount: ") + cudaGetErrorString(err);
    cudaGetLastError();  // clear the sticky error so later queries start clean
    return false;
  }
  if (count == 0) {
    if (why_not) *why_not = "no CUDA device present";
    return false;
  }
  return true;
#else
  if (why_not) *why_not = "this build has no CUDA backend (configured without nvcc)";
  return false;
#endif
}

#if !FER_HAVE_CUDA
std::unique_ptr<Backend> make_cuda_backend(int, const BackendOptions&) {
  throw DeviceError("this build has no CUDA backend (configured without nvcc); use --device cpu");
}
#endif

}  // namespace fer
