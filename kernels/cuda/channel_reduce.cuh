#pragma once
// Two-stage, deterministic per-channel sums over row-major [rows, channels] tensors (channels
// fastest), shared by the bias gradient and batch normalisation (plan: launch_util.cuh).
// Device-side only: included by bias.cu and batch_norm.cu.
#include <cstdint>

#include <cuda_runtime.h>

#include "kernels/cuda/launch_util.cuh"

namespace fer::kernels::cuda::reduce {

constexpr int kLanes = 8;     // row lanes per stage-1 block (blockDim = (32, kLanes))
constexpr int kChannels = 32; // channels per stage-1 block: a warp reads 128 contiguous bytes
constexpr int kStage2 = 256;  // threads per stage-2 block (one block per channel)

// What stage 1 sums per element, given the element index i, its channel c and row r.
enum class Terms { bias, bn_stats, bn_backward };

template <Terms T>
struct TermsOf;
template <>
struct TermsOf<Terms::bias> {
  static constexpr int kSums = 1;
  const float* dy;
  __device__ void add(int64_t i, int c, double* s) const { s[0] += double(dy[i]); }
};
// Shifted by the channel's value in row 0: var = E[(x-k)^2] - E[x-k]^2 in double keeps ~1e-16
// relative accuracy whenever k is within a few standard deviations of the mean (it is a sample).
template <>
struct TermsOf<Terms::bn_stats> {
  static constexpr int kSums = 2;
  const float* x;
  int channels;
  __device__ void add(int64_t i, int c, double* s) const {
    const double d = double(x[i]) - double(x[c]);
    s[0] += d;
    s[1] += d * d;
  }
};
template <>
struct TermsOf<Terms::bn_backward> {
  static constexpr int kSums = 2;
  const float* x;
  const float* dy;
  const float* mean;
  __device__ void add(int64_t i, int c, double* s) const {
    const double g = double(dy[i]);
    s[0] += g;
    s[1] += g * (double(x[i]) - double(mean[c]));
  }
};

// grid = (chunks, ceil(channels / 32)), block = (32, kLanes). partial[(chunk * kSums + s) * channels + c].
template <Terms T>
__global__ void __launch_bounds__(kChannels * kLanes)
    stage1(int64_t rows, int channels, int64_t rows_per_chunk, TermsOf<T> terms, double* partial) {
  constexpr int S = TermsOf<T>::kSums;
  __shared__ double lane_sum[S][kLanes][kChannels + 1];
  const int c = blockIdx.y * kChannels + threadIdx.x;
  const int64_t r0 = int64_t(blockIdx.x) * rows_per_chunk;
  const int64_t r1 = r0 + rows_per_chunk < rows ? r0 + rows_per_chunk : rows;
  double s[S] = {};
  if (c < channels) {
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kLanes) terms.add(r * channels + c, c, s);
  }
  for (int k = 0; k < S; ++k) lane_sum[k][threadIdx.y][threadIdx.x] = s[k];
  __syncthreads();
  if (threadIdx.y == 0 && c < channels) {
    for (int k = 0; k < S; ++k) {
      double t = 0.0;
      for (int j = 0; j < kLanes; ++j) t += lane_sum[k][j][threadIdx.x];  // fixed order
      partial[(int64_t(blockIdx.x) * S + k) * channels + c] = t;
    }
  }
}

// Stage 2: block c adds channel c's partials: thread t takes chunks t, t+256, ... in order, then a
// fixed shared-memory tree. total[k] is valid in thread 0 only. Returns in every thread.
template <int S>
__device__ void channel_totals(int64_t chunks, int channels, const double* partial, double* total) {
  __shared__ double tree[S][kStage2];
  const int c = blockIdx.x;
  double s[S] = {};
  for (int64_t k = threadIdx.x; k < chunks; k += kStage2)
    for (int j = 0; j < S; ++j) s[j] += partial[(k * S + j) * channels + c];
  for (int j = 0; j < S; ++j) tree[j][threadIdx.x] = s[j];
  __syncthreads();
  for (int width = kStage2 / 2; width > 0; width /= 2) {
    if (threadIdx.x < width)
      for (int j = 0; j < S; ++j) tree[j][threadIdx.x] += tree[j][threadIdx.x + width];
    __syncthreads();
  }
  if (threadIdx.x == 0)
    for (int j = 0; j < S; ++j) total[j] = tree[j][0];
}

inline dim3 stage1_grid(const ChannelReducePlan& p, int channels) {
  return dim3(unsigned(p.chunks), unsigned((channels + kChannels - 1) / kChannels));
}

}  // namespace fer::kernels::cuda::reduce
