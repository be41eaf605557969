#pragma once
// Thin launcher; safe to include from host C++ (no CUDA syntax here).
#include <cstdint>

#include <cuda_runtime_api.h>

#include "kernels/common/augment.h"

namespace fer::kernels::cuda {

// Same contract as kernels::cpu::images_to_float; src, draws and dst are device pointers.
void images_to_float(int n, int h, int w, const uint8_t* src, const AugmentDraw* draws, float* dst,
                     cudaStream_t stream);

// Same contract as kernels::cpu::augment_draws (one thread per image, the shared augment_draw
// math); indices, keys and dst are device pointers, cfg travels by value. Returns the launch
// status.
cudaError_t augment_draws(int n, const int32_t* indices, const int64_t* keys, uint64_t seed,
                          uint64_t epoch, const AugmentConfig& cfg, AugmentDraw* dst,
                          cudaStream_t stream);

}  // namespace fer::kernels::cuda
