// Bias add (element-wise) and bias gradient (column sums, two-stage: channel_reduce.cuh). Every
// sum is taken in a fixed order, so the result does not depend on scheduling.
#include "kernels/cuda/bias.cuh"
#include "kernels/cuda/channel_reduce.cuh"
#include "kernels/cuda/launch_util.cuh"

namespace fer::kernels::cuda {
namespace {

__global__ void bias_add_kernel(int64_t n, int cols, const float* b, float* y) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    y[i] += b[i % cols];
  }
}

namespace rd = reduce;

__global__ void bias_grad_finish(int64_t chunks, int cols, const double* partial, float* db) {
  double total[1];
  rd::channel_totals<1>(chunks, cols, partial, total);
  if (threadIdx.x == 0) db[blockIdx.x] = float(total[0]);
}

}  // namespace

cudaError_t bias_add(int64_t rows, int cols, const float* b, float* y, cudaStream_t stream) {
  const int64_t n = rows * cols;
  if (n <= 0) return cudaSuccess;
  bias_add_kernel<<<grid_for(n), kBlock, 0, stream>>>(n, cols, b, y);
  return cudaGetLastError();
}

cudaError_t bias_grad(int64_t rows, int cols, const float* dy, float* db, double* scratch,
                      size_t scratch_bytes, cudaStream_t stream) {
  if (cols <= 0) return cudaSuccess;
  const ChannelReducePlan p = plan_channel_reduce(rows, cols, 1, scratch_bytes);
  if (scratch == nullptr || p.scratch_bytes > scratch_bytes) return cudaErrorInvalidValue;
  rd::stage1<rd::Terms::bias><<<rd::stage1_grid(p, cols), dim3(rd::kChannels, rd::kLanes), 0, stream>>>(
      rows, cols, p.rows_per_chunk, rd::TermsOf<rd::Terms::bias>{dy}, scratch);
  bias_grad_finish<<<unsigned(cols), rd::kStage2, 0, stream>>>(p.chunks, cols, scratch, db);
  return cudaGetLastError();
}

}  // namespace fer::kernels::cuda
