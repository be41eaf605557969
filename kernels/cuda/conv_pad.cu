#include "kernels/cuda/conv_pad.cuh"
#include "kernels/cuda/launch_util.cuh"

namespace fer::kernels::cuda {
namespace {

// One thread per element of the padded tensor.
__global__ void pad_kernel(int n, int h, int w, int c, int pad_top, int pad_left, int hp, int wp,
                           const float* x, float* xp) {
  const int64_t total = int64_t(n) * hp * wp * c;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    int64_t t = i;
    const int ch = int(t % c); t /= c;
    const int j = int(t % wp); t /= wp;
    const int r = int(t % hp);
    const int64_t b = t / hp;
    const int sr = pad_source_index(r, pad_top, h);
    const int sj = pad_source_index(j, pad_left, w);
    xp[i] = (sr >= 0 && sj >= 0) ? x[((b * h + sr) * w + sj) * c + ch] : 0.0f;
  }
}

// One thread per element of the unpadded tensor.
__global__ void crop_kernel(int n, int h, int w, int c, int pad_top, int pad_left, int hp, int wp,
                            const float* dxp, float* dx) {
  const int64_t total = int64_t(n) * h * w * c;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    int64_t t = i;
    const int ch = int(t % c); t /= c;
    const int j = int(t % w); t /= w;
    const int r = int(t % h);
    const int64_t b = t / h;
    const int pr = pad_target_index(r, pad_top, hp);
    const int pj = pad_target_index(j, pad_left, wp);
    dx[i] = (pr >= 0 && pj >= 0) ? dxp[((b * hp + pr) * wp + pj) * c + ch] : 0.0f;
  }
}

}  // namespace

cudaError_t pad_nhwc(int n, int h, int w, int c, int pad_top, int pad_left, int hp, int wp,
                     const float* x, float* xp, cudaStream_t stream) {
  const int64_t total = int64_t(n) * hp * wp * c;
  if (total <= 0) return cudaSuccess;
  pad_kernel<<<grid_for(total), kBlock, 0, stream>>>(n, h, w, c, pad_top, pad_left, hp, wp, x, xp);
  return cudaGetLastError();
}

cudaError_t crop_nhwc(int n, int h, int w, int c, int pad_top, int pad_left, int hp, int wp,
                      const float* dxp, float* dx, cudaStream_t stream) {
  const int64_t total = int64_t(n) * h * w * c;
  if (total <= 0) return cudaSuccess;
  crop_kernel<<<grid_for(total), kBlock, 0, stream>>>(n, h, w, c, pad_top, pad_left, hp, wp, dxp,
                                                     dx);
  return cudaGetLastError();
}

}  // namespace fer::kernels::cuda
