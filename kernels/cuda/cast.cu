#include "kernels/common/bf16_bits.h"
#include "kernels/cuda/cast.cuh"
#include "kernels/cuda/launch_util.cuh"

namespace fer::kernels::cuda {
namespace {

// Memory-bound grid-stride loops: one 4-byte read and one 2-byte write per element (or back).
__global__ void float_to_bf16_kernel(int64_t n, const float* __restrict__ x,
                                     uint16_t* __restrict__ y) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    y[i] = bf16_bits_from_float(x[i]);
  }
}

__global__ void bf16_to_float_kernel(int64_t n, const uint16_t* __restrict__ x,
                                     float* __restrict__ y) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    y[i] = float_from_bf16_bits(x[i]);
  }
}

}  // namespace

cudaError_t float_to_bf16(int64_t n, const float* x, uint16_t* y, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  float_to_bf16_kernel<<<grid_for(n), kBlock, 0, stream>>>(n, x, y);
  return cudaGetLastError();
}

cudaError_t bf16_to_float(int64_t n, const uint16_t* x, float* y, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  bf16_to_float_kernel<<<grid_for(n), kBlock, 0, stream>>>(n, x, y);
  return cudaGetLastError();
}

}  // namespace fer::kernels::cuda
