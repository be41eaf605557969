// Bias add (element-wise) and bias gradient (column sums). The column sum gives each block 32
// adjacent columns (a warp reads 32 consecutive floats of a row) and 32 row lanes; the 32 partial
// sums per column are added in a fixed order, so the result does not depend on scheduling.
#include "kernels/cuda/bias.cuh"
#include "kernels/cuda/launch_util.cuh"

namespace fer::kernels::cuda {
namespace {

constexpr int kTile = 32;

__global__ void bias_add_kernel(int64_t n, int cols, const float* b, float* y) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    y[i] += b[i % cols];
  }
}

// blockDim = (kTile, kTile); blockIdx.x picks 32 columns.
__global__ void __launch_bounds__(kTile * kTile) column_sum_kernel(int64_t rows, int cols, const float* dy, float* db) {
  __shared__ double part[kTile][kTile + 1];
  const int col = blockIdx.x * kTile + threadIdx.x;
  double s = 0.0;
  if (col < cols) {
    for (int64_t r = threadIdx.y; r < rows; r += kTile) s += double(dy[r * cols + col]);
  }
  part[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && col < cols) {
    double t = 0.0;
    for (int j = 0; j < kTile; ++j) t += part[j][threadIdx.x];
    db[col] = float(t);
  }
}

}  // namespace

cudaError_t bias_add(int64_t rows, int cols, const float* b, float* y, cudaStream_t stream) {
  const int64_t n = rows * cols;
  if (n <= 0) return cudaSuccess;
  bias_add_kernel<<<grid_for(n), kBlock, 0, stream>>>(n, cols, b, y);
  return cudaGetLastError();
}

cudaError_t bias_grad(int64_t rows, int cols, const float* dy, float* db, cudaStream_t stream) {
  if (cols <= 0) return cudaSuccess;
  const unsigned blocks = unsigned((cols + kTile - 1) / kTile);
  column_sum_kernel<<<blocks, dim3(kTile, kTile), 0, stream>>>(rows, cols, dy, db);
  return cudaGetLastError();
}

}  // namespace fer::kernels::cuda
