#include "kernels/cuda/launch_util.cuh"
#include "kernels/cuda/pooling.cuh"

namespace fer::kernels::cuda {
namespace {

// One thread per output element (n, oy, ox, c), c fastest.
// (PoolShape's size helpers are host-only: totals come in as arguments.)
__global__ void pool_forward_kernel(PoolShape s, int mode, int64_t total, const float* x,
                                    float* y) {
  const float inv_count = 1.0f / float(s.ph * s.pw);
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    int64_t t = i;
    const int c = int(t % s.c); t /= s.c;
    const int ox = int(t % s.ow); t /= s.ow;
    const int oy = int(t % s.oh);
    const int64_t n = t / s.oh;
    const float* base = x + ((n * s.h + int64_t(oy) * s.stride_h) * s.w + int64_t(ox) * s.stride_w) * s.c + c;
    if (mode == int(PoolMode::max)) {
      float best = base[0];
      for (int ky = 0; ky < s.ph; ++ky) {
        for (int kx = 0; kx < s.pw; ++kx) {
          const float v = base[(int64_t(ky) * s.w + kx) * s.c];
          if (v > best) best = v;  // strict: the first maximum wins
        }
      }
      y[i] = best;
    } else {
      float sum = 0.0f;
      for (int ky = 0; ky < s.ph; ++ky) {
        for (int kx = 0; kx < s.pw; ++kx) sum += base[(int64_t(ky) * s.w + kx) * s.c];
      }
      y[i] = sum * inv_count;
    }
  }
}

// One thread per input element (n, iy, ix, c): gathers the gradient of every window covering it.
__global__ void pool_backward_kernel(PoolShape s, int mode, int64_t total, const float* x,
                                     const float* y, const float* dy, float* dx) {
  const float inv_count = 1.0f / float(s.ph * s.pw);
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    int64_t t = i;
    const int c = int(t % s.c); t /= s.c;
    const int ix = int(t % s.w); t /= s.w;
    const int iy = int(t % s.h);
    const int64_t n = t / s.h;
    int oy_lo, oy_hi, ox_lo, ox_hi;
    pool_covering_windows(iy, s.ph, s.stride_h, s.oh, &oy_lo, &oy_hi);
    pool_covering_windows(ix, s.pw, s.stride_w, s.ow, &ox_lo, &ox_hi);
    float acc = 0.0f;
    for (int oy = oy_lo; oy <= oy_hi; ++oy) {
      for (int ox = ox_lo; ox <= ox_hi; ++ox) {
        const int64_t o = ((n * s.oh + oy) * s.ow + ox) * s.c + c;
        if (mode == int(PoolMode::max)) {
          // Find the window's first position holding the maximum; credit it if it is (iy, ix).
          const float target = y[o];
          const int y0 = oy * s.stride_h, x0 = ox * s.stride_w;
          const float* base = x + ((n * s.h + y0) * s.w + x0) * s.c + c;
          int hit_y = -1, hit_x = -1;
          for (int ky = 0; ky < s.ph && hit_y < 0; ++ky) {
            for (int kx = 0; kx < s.pw; ++kx) {
              if (base[(int64_t(ky) * s.w + kx) * s.c] == target) {
                hit_y = y0 + ky;
                hit_x = x0 + kx;
                break;
              }
            }
          }
          if (hit_y == iy && hit_x == ix) acc += dy[o];
        } else {
          acc += dy[o] * inv_count;
        }
      }
    }
    dx[i] = acc;
  }
}

}  // namespace

cudaError_t pool2d_forward(const PoolShape& s, PoolMode mode, const float* x, float* y,
                           cudaStream_t stream) {
  const int64_t total = s.y_size();
  if (total <= 0) return cudaSuccess;
  pool_forward_kernel<<<grid_for(total), kBlock, 0, stream>>>(s, int(mode), total, x, y);
  return cudaGetLastError();
}

cudaError_t pool2d_backward(const PoolShape& s, PoolMode mode, const float* x, const float* y,
                            const float* dy, float* dx, cudaStream_t stream) {
  const int64_t total = s.x_size();
  if (total <= 0) return cudaSuccess;
  pool_backward_kernel<<<grid_for(total), kBlock, 0, stream>>>(s, int(mode), total, x, y, dy, dx);
  return cudaGetLastError();
}

}  // namespace fer::kernels::cuda
