#pragma once
// Bias over the last (fastest) dimension of a row-major [rows, cols] tensor: convolution outputs
// (rows = n*oh*ow, cols = k) and dense outputs (rows = n, cols = out). Host-includable launchers.
#include <cstdint>

#include <cuda_runtime_api.h>

namespace fer::kernels::cuda {

// y[r, j] += b[j]
cudaError_t bias_add(int64_t rows, int cols, const float* b, float* y, cudaStream_t stream);
// db[j] = sum_r dy[r, j] (overwritten; accumulated in double, in a fixed order: deterministic).
// scratch: device memory for the partial sums, plan_channel_reduce(rows, cols, 1, scratch_bytes)
// .scratch_bytes of it used (launch_util.cuh); cudaErrorInvalidValue when null or too small.
cudaError_t bias_grad(int64_t rows, int cols, const float* dy, float* db, double* scratch,
                      size_t scratch_bytes, cudaStream_t stream);

}  // namespace fer::kernels::cuda
