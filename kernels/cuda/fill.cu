#include "kernels/cuda/fill.cuh"
#include "kernels/cuda/launch_util.cuh"

namespace fer::kernels::cuda {
namespace {

__global__ void fill_kernel(float* p, int64_t n, float value) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    p[i] = value;
  }
}

}  // namespace

cudaError_t fill(float* p, int64_t n, float value, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  fill_kernel<<<grid_for(n), kBlock, 0, stream>>>(p, n, value);
  return cudaGetLastError();
}

}  // namespace fer::kernels::cuda
