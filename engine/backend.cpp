#include "engine/backend.h"

#include <chrono>

#include "engine/error.h"

#if FER_HAVE_CUDA
#include <cuda_runtime.h>

#include "engine/cuda/cuda_timer.h"
#endif

namespace fer {

const char* device_name(DeviceKind kind) { return kind == DeviceKind::cuda ? "cuda" : "cpu"; }

// ---- timers: CUDA events on the backend's stream when it has one, the host clock otherwise ----
namespace {
struct HostTimer {
  std::chrono::steady_clock::time_point at{};
};
}  // namespace

void* Backend::timer_create() {
#if FER_HAVE_CUDA
  if (native_stream()) return cuda_timer::create();
#endif
  return new HostTimer{};
}

void Backend::timer_record(void* timer) {
#if FER_HAVE_CUDA
  if (void* stream = native_stream()) return cuda_timer::record(timer, stream);
#endif
  synchronize();
  static_cast<HostTimer*>(timer)->at = std::chrono::steady_clock::now();
}

float Backend::timer_elapsed_ms(void* a, void* b) {
#if FER_HAVE_CUDA
  if (native_stream()) return cuda_timer::elapsed_ms(a, b);
#endif
  const auto d = static_cast<HostTimer*>(b)->at - static_cast<HostTimer*>(a)->at;
  return std::chrono::duration<float, std::milli>(d).count();
}

void Backend::timer_destroy(void* timer) {
#if FER_HAVE_CUDA
  if (native_stream()) return cuda_timer::destroy(timer);
#endif
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
