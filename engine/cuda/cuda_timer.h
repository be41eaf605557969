#pragma once
// CUDA-event timers behind Backend::timer_*(): a timer is one cudaEvent_t recorded on a stream, so
// timing a layer or a step costs no host synchronisation. Plain C++ header (no CUDA types); the
// functions exist only in CUDA builds (engine/cuda/cuda_timer.cpp).
namespace fer::cuda_timer {

void* create();                         // cudaEventCreate (timing enabled)
void record(void* timer, void* stream);  // cudaEventRecord on that stream (a cudaStream_t)
float elapsed_ms(void* a, void* b);      // waits for b, then cudaEventElapsedTime(a, b)
void destroy(void* timer);              // cudaEventDestroy; null is ignored

}  // namespace fer::cuda_timer
