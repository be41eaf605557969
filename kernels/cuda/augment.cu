// uint8 -> float input conversion with the per-image Keras affine warp, and the per-image draws
// of batches gathered from resident data (both from kernels/common/augment.h).
#include "kernels/cuda/augment.cuh"
#include "kernels/cuda/launch_util.cuh"

#include <stdexcept>
#include <string>

namespace fer::kernels::cuda {
namespace {

constexpr int kThreads = 256;

// One block row per image (blockIdx.y), threads stride over its pixels; the map is computed once
// per thread from the draw (a few flops, no shared memory or barrier needed).
__global__ void images_to_float_kernel(int h, int w, const uint8_t* __restrict__ src,
                                       const AugmentDraw* __restrict__ draws,
                                       float* __restrict__ dst) {
  const int image = blockIdx.y;
  const int pixels = h * w;
  const uint8_t* img = src + size_t(image) * size_t(pixels);
  float* out = dst + size_t(image) * size_t(pixels);
  const int first = blockIdx.x * blockDim.x + threadIdx.x;
  const int stride = gridDim.x * blockDim.x;
  if (!draws) {
    for (int p = first; p < pixels; p += stride) out[p] = float(__ldg(img + p)) * kPixelScale;
    return;
  }
  const AugmentMap m = augment_map(draws[image], h, w);
  for (int p = first; p < pixels; p += stride) {
    const int r = p / w, c = p - r * w;
    out[p] = augment_pixel(img, h, w, m, r, c) * kPixelScale;
  }
}

__global__ void augment_draws_kernel(int n, const int32_t* __restrict__ indices,
                                     const int64_t* __restrict__ keys, uint64_t seed,
                                     uint64_t epoch, AugmentConfig cfg,
                                     AugmentDraw* __restrict__ dst) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    const int64_t key = keys ? keys[indices[i]] : int64_t(indices[i]);
    dst[i] = augment_draw(seed, epoch, uint64_t(key), cfg);
  }
}

}  // namespace

cudaError_t augment_draws(int n, const int32_t* indices, const int64_t* keys, uint64_t seed,
                          uint64_t epoch, const AugmentConfig& cfg, AugmentDraw* dst,
                          cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  augment_draws_kernel<<<grid_for(n, 128), 128, 0, stream>>>(n, indices, keys, seed, epoch, cfg,
                                                             dst);
  return cudaGetLastError();
}

void images_to_float(int n, int h, int w, const uint8_t* src, const AugmentDraw* draws, float* dst,
                     cudaStream_t stream) {
  if (n <= 0 || h <= 0 || w <= 0) return;
  if (n > 65535) {
    throw std::invalid_argument("images_to_float: batch of " + std::to_string(n) +
                                " images exceeds the 65535 grid rows of this kernel");
  }
  const int pixels = h * w;
  int blocks_x = (pixels + kThreads - 1) / kThreads;
  if (blocks_x > 16) blocks_x = 16;
  images_to_float_kernel<<<dim3(unsigned(blocks_x), unsigned(n)), kThreads, 0, stream>>>(h, w, src,
                                                                                       draws, dst);
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string("images_to_float kernel launch (n=") + std::to_string(n) +
                             ", h=" + std::to_string(h) + ", w=" + std::to_string(w) +
                             "): " + cudaGetErrorString(err));
  }
}

}  // namespace fer::kernels::cuda
