// Batch normalisation. Per-channel reductions give each block 32 adjacent channels (coalesced
// reads along a row) and 32 row lanes, accumulate in double, and combine the lanes' partial sums
// in a fixed order: deterministic, and two passes (mean, then squared deviations) keep the
// variance accurate. The element-wise passes then use the saved per-channel values.
#include "kernels/cuda/batch_norm.cuh"
#include "kernels/cuda/launch_util.cuh"

namespace fer::kernels::cuda {
namespace {

constexpr int kTile = 32;

// Sum of part[0..kTile)[threadIdx.x] in a fixed order; valid in threads with threadIdx.y == 0.
__device__ __forceinline__ double column_total(double (*part)[kTile + 1]) {
  double t = 0.0;
  for (int j = 0; j < kTile; ++j) t += part[j][threadIdx.x];
  return t;
}

// blockDim = (kTile, kTile); blockIdx.x picks 32 channels.
__global__ void __launch_bounds__(kTile * kTile) bn_train_stats_kernel(int64_t rows, int channels, const float* x, float* save_mean,
                                      float* save_invstd, float* moving_mean, float* moving_var,
                                      float momentum, float epsilon) {
  __shared__ double part[kTile][kTile + 1];
  __shared__ double mean_of[kTile];
  const int c = blockIdx.x * kTile + threadIdx.x;
  const bool active = c < channels;

  double s = 0.0;
  if (active) {
    for (int64_t r = threadIdx.y; r < rows; r += kTile) s += double(x[r * channels + c]);
  }
  part[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0) mean_of[threadIdx.x] = rows > 0 ? column_total(part) / double(rows) : 0.0;
  __syncthreads();
  const double mean = mean_of[threadIdx.x];

  double q = 0.0;
  if (active) {
    for (int64_t r = threadIdx.y; r < rows; r += kTile) {
      const double d = double(x[r * channels + c]) - mean;
      q += d * d;
    }
  }
  part[threadIdx.y][threadIdx.x] = q;
  __syncthreads();
  if (threadIdx.y == 0 && active) {
    const double var = rows > 0 ? column_total(part) / double(rows) : 0.0;
    const double unbiased = rows > 1 ? var * double(rows) / double(rows - 1) : var;
    const double mom = double(momentum);
    save_mean[c] = float(mean);
    save_invstd[c] = float(1.0 / sqrt(var + double(epsilon)));
    if (moving_mean) moving_mean[c] = float(mom * double(moving_mean[c]) + (1.0 - mom) * mean);
    if (moving_var) moving_var[c] = float(mom * double(moving_var[c]) + (1.0 - mom) * unbiased);
  }
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

// dbeta = sum dy, dgamma = invstd * sum dy*(x - mean) per channel. blockDim = (kTile, kTile).
__global__ void __launch_bounds__(kTile * kTile) bn_backward_reduce_kernel(int64_t rows, int channels, const float* x,
                                          const float* dy, const float* mean, const float* invstd,
                                          float* dgamma, float* dbeta) {
  __shared__ double part_dy[kTile][kTile + 1];
  __shared__ double part_dyx[kTile][kTile + 1];
  const int c = blockIdx.x * kTile + threadIdx.x;
  double sdy = 0.0, sdyx = 0.0;
  if (c < channels) {
    const double m = double(mean[c]);
    for (int64_t r = threadIdx.y; r < rows; r += kTile) {
      const int64_t i = r * channels + c;
      const double g = double(dy[i]);
      sdy += g;
      sdyx += g * (double(x[i]) - m);
    }
  }
  part_dy[threadIdx.y][threadIdx.x] = sdy;
  part_dyx[threadIdx.y][threadIdx.x] = sdyx;
  __syncthreads();
  if (threadIdx.y == 0 && c < channels) {
    dbeta[c] = float(column_total(part_dy));
    dgamma[c] = float(column_total(part_dyx) * double(invstd[c]));
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

unsigned channel_blocks(int channels) { return unsigned((channels + kTile - 1) / kTile); }

}  // namespace

cudaError_t batchnorm_forward_train(int64_t rows, int channels, const float* x, const float* gamma,
                                    const float* beta, float* y, float* save_mean,
                                    float* save_invstd, float* moving_mean, float* moving_var,
                                    float momentum, float epsilon, cudaStream_t stream) {
  if (channels <= 0) return cudaSuccess;
  bn_train_stats_kernel<<<channel_blocks(channels), dim3(kTile, kTile), 0, stream>>>(
      rows, channels, x, save_mean, save_invstd, moving_mean, moving_var, momentum, epsilon);
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
                               float* dx, float* dgamma, float* dbeta, cudaStream_t stream) {
  if (channels <= 0) return cudaSuccess;
  bn_backward_reduce_kernel<<<channel_blocks(channels), dim3(kTile, kTile), 0, stream>>>(
      rows, channels, x, dy, save_mean, save_invstd, dgamma, dbeta);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  const int64_t n = rows * channels;
  if (n <= 0 || dx == nullptr) return cudaSuccess;
  bn_backward_apply_kernel<<<grid_for(n), kBlock, 0, stream>>>(
      n, rows, channels, x, gamma, dy, save_mean, save_invstd, dgamma, dbeta, dx);
  return cudaGetLastError();
}

}  // namespace fer::kernels::cuda
