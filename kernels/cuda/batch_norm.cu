// Batch normalisation. The per-channel reductions are two-stage (channel_reduce.cuh: row chunks
// across the whole GPU, then a fixed-order sum per channel), accumulate in double and are
// deterministic. The statistics take one pass over x: sums of x - k and (x - k)^2 with k the
// channel's row-0 value, which in double keep the variance as accurate as a two-pass mean-then-
// deviations (the former kernel read x twice). The element-wise passes use the saved values.
#include "kernels/cuda/batch_norm.cuh"
#include "kernels/cuda/channel_reduce.cuh"
#include "kernels/cuda/launch_util.cuh"

namespace fer::kernels::cuda {
namespace {

namespace rd = reduce;

// One block per channel: totals of (x - k, (x - k)^2), k = x[0, c] -> statistics and moving averages.
__global__ void bn_stats_finish(int64_t chunks, int64_t rows, int channels, const float* x,
                                const double* partial, float* save_mean, float* save_invstd,
                                float* moving_mean, float* moving_var, float momentum, float epsilon) {
  double total[2];
  rd::channel_totals<2>(chunks, channels, partial, total);
  if (threadIdx.x != 0) return;
  const int c = blockIdx.x;
  const double n = double(rows);
  const double shifted_mean = rows > 0 ? total[0] / n : 0.0;
  const double mean = rows > 0 ? double(x[c]) + shifted_mean : 0.0;
  const double var = rows > 0 ? fmax(total[1] / n - shifted_mean * shifted_mean, 0.0) : 0.0;
  const double unbiased = rows > 1 ? var * n / (n - 1.0) : var;
  const double mom = double(momentum);
  save_mean[c] = float(mean);
  save_invstd[c] = float(1.0 / sqrt(var + double(epsilon)));
  if (moving_mean) moving_mean[c] = float(mom * double(moving_mean[c]) + (1.0 - mom) * mean);
  if (moving_var) moving_var[c] = float(mom * double(moving_var[c]) + (1.0 - mom) * unbiased);
}

// dbeta = sum dy, dgamma = invstd * sum dy*(x - mean).
__global__ void bn_backward_finish(int64_t chunks, int channels, const double* partial,
                                   const float* invstd, float* dgamma, float* dbeta) {
  double total[2];
  rd::channel_totals<2>(chunks, channels, partial, total);
  if (threadIdx.x != 0) return;
  const int c = blockIdx.x;
  dbeta[c] = float(total[0]);
  dgamma[c] = float(total[1] * double(invstd[c]));
}

__global__ void bn_apply_kernel(int64_t n, int channels, const float* x, const float* gamma,
                                const float* beta, const float* mean, const float* invstd,
                                float* y) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int c = int(i % channels);
    const float g = gamma ? gamma[c] : 1.0f;
    const float b = beta ? beta[c] : 0.0f;
    y[i] = (x[i] - mean[c]) * (g * invstd[c]) + b;
  }
}

__global__ void bn_infer_kernel(int64_t n, int channels, const float* x, const float* gamma,
                                const float* beta, const float* moving_mean,
                                const float* moving_var, float epsilon, float* y) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int c = int(i % channels);
    const float g = gamma ? gamma[c] : 1.0f;
    const float b = beta ? beta[c] : 0.0f;
    const float scale = float(double(g) / sqrt(double(moving_var[c]) + double(epsilon)));
    y[i] = (x[i] - moving_mean[c]) * scale + b;
  }
}

__global__ void bn_backward_apply_kernel(int64_t n, int64_t rows, int channels, const float* x,
                                         const float* gamma, const float* dy, const float* mean,
                                         const float* invstd, const float* dgamma,
                                         const float* dbeta, float* dx) {
  const float inv_rows = 1.0f / float(rows);
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int c = int(i % channels);
    const float g = gamma ? gamma[c] : 1.0f;
    const float is = invstd[c];
    const float mean_dbeta = dbeta[c] * inv_rows;
    const float mean_dgamma = dgamma[c] * is * inv_rows;
    dx[i] = (g * is) * (dy[i] - mean_dbeta - (x[i] - mean[c]) * mean_dgamma);
  }
}

}  // namespace

cudaError_t batchnorm_forward_train(int64_t rows, int channels, const float* x, const float* gamma,
                                    const float* beta, float* y, float* save_mean,
                                    float* save_invstd, float* moving_mean, float* moving_var,
                                    float momentum, float epsilon, double* scratch,
                                    size_t scratch_bytes, cudaStream_t stream) {
  if (channels <= 0) return cudaSuccess;
  const ChannelReducePlan p = plan_channel_reduce(rows, channels, 2, scratch_bytes);
  if (scratch == nullptr || p.scratch_bytes > scratch_bytes) return cudaErrorInvalidValue;
  rd::stage1<rd::Terms::bn_stats><<<rd::stage1_grid(p, channels), dim3(rd::kChannels, rd::kLanes), 0, stream>>>(
      rows, channels, p.rows_per_chunk, rd::TermsOf<rd::Terms::bn_stats>{x, channels}, scratch);
  bn_stats_finish<<<unsigned(channels), rd::kStage2, 0, stream>>>(
      p.chunks, rows, channels, x, scratch, save_mean, save_invstd, moving_mean, moving_var, momentum, epsilon);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  const int64_t n = rows * channels;
  if (n <= 0) return cudaSuccess;
  bn_apply_kernel<<<grid_for(n), kBlock, 0, stream>>>(n, channels, x, gamma, beta, save_mean,
                                                       save_invstd, y);
  return cudaGetLastError();
}

cudaError_t batchnorm_forward_infer(int64_t rows, int channels, const float* x, const float* gamma,
                                    const float* beta, const float* moving_mean,
                                    const float* moving_var, float* y, float epsilon,
                                    cudaStream_t stream) {
  const int64_t n = rows * channels;
  if (n <= 0) return cudaSuccess;
  bn_infer_kernel<<<grid_for(n), kBlock, 0, stream>>>(n, channels, x, gamma, beta, moving_mean,
                                                       moving_var, epsilon, y);
  return cudaGetLastError();
}

cudaError_t batchnorm_backward(int64_t rows, int channels, const float* x, const float* gamma,
                               const float* dy, const float* save_mean, const float* save_invstd,
                               float* dx, float* dgamma, float* dbeta, double* scratch,
                               size_t scratch_bytes, cudaStream_t stream) {
  if (channels <= 0) return cudaSuccess;
  const ChannelReducePlan p = plan_channel_reduce(rows, channels, 2, scratch_bytes);
  if (scratch == nullptr || p.scratch_bytes > scratch_bytes) return cudaErrorInvalidValue;
  rd::stage1<rd::Terms::bn_backward><<<rd::stage1_grid(p, channels), dim3(rd::kChannels, rd::kLanes), 0, stream>>>(
      rows, channels, p.rows_per_chunk, rd::TermsOf<rd::Terms::bn_backward>{x, dy, save_mean}, scratch);
  bn_backward_finish<<<unsigned(channels), rd::kStage2, 0, stream>>>(p.chunks, channels, scratch, save_invstd,
                                                                     dgamma, dbeta);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  const int64_t n = rows * channels;
  if (n <= 0 || dx == nullptr) return cudaSuccess;
  bn_backward_apply_kernel<<<grid_for(n), kBlock, 0, stream>>>(
      n, rows, channels, x, gamma, dy, save_mean, save_invstd, dgamma, dbeta, dx);
  return cudaGetLastError();
}

}  // namespace fer::kernels::cuda
