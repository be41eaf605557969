// uint8 -> float input conversion with the per-image Keras affine warp (kernels/common/augment.h).
#include "kernels/cuda/augment.cuh"

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

}  // namespace

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
