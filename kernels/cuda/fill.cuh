#pragma once
// p[0..n) = value. Host-includable launcher; returns the launch status.
#include <cstdint>

#include <cuda_runtime_api.h>

namespace fer::kernels::cuda {

cudaError_t fill(float* p, int64_t n, float value, cudaStream_t stream);

}  // namespace fer::kernels::cuda
