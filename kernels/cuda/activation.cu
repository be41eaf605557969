// ReLU and row softmax. Softmax uses one warp per row: each lane owns columns lane, lane+32, ...
// and only ever reads and writes its own columns, so in-place use (y == x, dx == dy) is safe.
#include "kernels/cuda/activation.cuh"
#include "kernels/cuda/launch_util.cuh"

namespace fer::kernels::cuda {
namespace {

constexpr int kWarp = 32;
constexpr int kRowsPerBlock = kBlock / kWarp;

__device__ __forceinline__ float warp_max(float v) {
  for (int off = kWarp / 2; off > 0; off /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int off = kWarp / 2; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

__global__ void relu_forward_kernel(int64_t n, const float* x, float* y) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float v = x[i];
    y[i] = v > 0.0f ? v : 0.0f;
  }
}

__global__ void relu_backward_kernel(int64_t n, const float* y, const float* dy, float* dx) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
  }
}

// All 32 lanes of a warp stay in the loop together (the row index is uniform across the warp), so
// the full-mask shuffles are legal.
__global__ void softmax_forward_kernel(int64_t rows, int cols, const float* x, float* y) {
  const int lane = threadIdx.x % kWarp;
  const int64_t warps = int64_t(gridDim.x) * kRowsPerBlock;
  for (int64_t row = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarp; row < rows;
       row += warps) {
    const float* xr = x + row * cols;
    float* yr = y + row * cols;
    float m = -INFINITY;
    for (int c = lane; c < cols; c += kWarp) m = fmaxf(m, xr[c]);
    m = warp_max(m);
    float s = 0.0f;
    for (int c = lane; c < cols; c += kWarp) s += expf(xr[c] - m);
    s = warp_sum(s);
    const float inv = 1.0f / s;
    for (int c = lane; c < cols; c += kWarp) yr[c] = expf(xr[c] - m) * inv;
  }
}

__global__ void softmax_backward_kernel(int64_t rows, int cols, const float* y, const float* dy,
                                        float* dx) {
  const int lane = threadIdx.x % kWarp;
  const int64_t warps = int64_t(gridDim.x) * kRowsPerBlock;
  for (int64_t row = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarp; row < rows;
       row += warps) {
    const float* yr = y + row * cols;
    const float* dyr = dy + row * cols;
    float* dxr = dx + row * cols;
    float dot = 0.0f;
    for (int c = lane; c < cols; c += kWarp) dot += dyr[c] * yr[c];
    dot = warp_sum(dot);
    for (int c = lane; c < cols; c += kWarp) dxr[c] = yr[c] * (dyr[c] - dot);
  }
}

unsigned row_grid(int64_t rows) { return grid_for(rows, kRowsPerBlock); }

}  // namespace

cudaError_t relu_forward(int64_t n, const float* x, float* y, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  relu_forward_kernel<<<grid_for(n), kBlock, 0, stream>>>(n, x, y);
  return cudaGetLastError();
}

cudaError_t relu_backward(int64_t n, const float* y, const float* dy, float* dx,
                          cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  relu_backward_kernel<<<grid_for(n), kBlock, 0, stream>>>(n, y, dy, dx);
  return cudaGetLastError();
}

cudaError_t softmax_forward(int64_t rows, int cols, const float* x, float* y, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return cudaSuccess;
  softmax_forward_kernel<<<row_grid(rows), kBlock, 0, stream>>>(rows, cols, x, y);
  return cudaGetLastError();
}

cudaError_t softmax_backward(int64_t rows, int cols, const float* y, const float* dy, float* dx,
                             cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return cudaSuccess;
  softmax_backward_kernel<<<row_grid(rows), kBlock, 0, stream>>>(rows, cols, y, dy, dx);
  return cudaGetLastError();
}

}  // namespace fer::kernels::cuda
