#pragma once
// Thin launcher; safe to include from host C++ (no CUDA syntax here).
#include <cstdint>

#include <cuda_runtime_api.h>

#include "kernels/common/augment.h"

namespace fer::kernels::cuda {

// Same contract as kernels::cpu::images_to_float; src, draws and dst are device pointers.
void images_to_float(int n, int h, int w, const uint8_t* src, const AugmentDraw* draws, float* dst,
                     cudaStream_t stream);

}  // namespace fer::kernels::cuda
