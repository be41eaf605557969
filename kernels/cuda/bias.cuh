#pragma once
// Bias over the last (fastest) dimension of a row-major [rows, cols] tensor: convolution outputs
// (rows = n*oh*ow, cols = k) and dense outputs (rows = n, cols = out). Host-includable launchers.
#include <cstdint>

#include <cuda_runtime_api.h>

namespace fer::kernels::cuda {

// y[r, j] += b[j]
cudaError_t bias_add(int64_t rows, int cols, const float* b, float* y, cudaStream_t stream);
// db[j] = sum_r dy[r, j] (overwritten; accumulated in double, in a fixed order: deterministic).
cudaError_t bias_grad(int64_t rows, int cols, const float* dy, float* db, cudaStream_t stream);

}  // namespace fer::kernels::cuda
