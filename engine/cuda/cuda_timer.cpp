#include "engine/cuda/cuda_timer.h"

#include <cuda_runtime_api.h>

#include "engine/cuda/check.h"

namespace fer::cuda_timer {

void* create() {
  cudaEvent_t e = nullptr;
  FER_CUDA_CHECK(cudaEventCreate(&e), "timer event");
  return e;
}

void record(void* timer, void* stream) {
  FER_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(timer), static_cast<cudaStream_t>(stream)),
                 "timer event");
}

float elapsed_ms(void* a, void* b) {
  FER_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(b)), "timer event");
  float ms = 0.0f;
  FER_CUDA_CHECK(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(a), static_cast<cudaEvent_t>(b)),
                 "timer events");
  return ms;
}

void destroy(void* timer) {
  if (timer) cudaEventDestroy(static_cast<cudaEvent_t>(timer));  // no throw: used in destructors
}

}  // namespace fer::cuda_timer
