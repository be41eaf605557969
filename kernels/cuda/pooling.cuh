#pragma once
// Max/average pooling with "valid" windows over NHWC tensors (kernels/common/shapes.h PoolShape).
// Host-includable launchers; each returns the launch status.
#include <cuda_runtime_api.h>

#include "kernels/common/host_device.h"
#include "kernels/common/shapes.h"

namespace fer::kernels::cuda {

// The output windows along one axis that cover input coordinate i: o in [*lo, *hi] (empty when
// *lo > *hi), i.e. o*stride <= i <= o*stride + window - 1 and 0 <= o < out. Host/device, so the
// host tests check the very arithmetic the backward kernel uses.
FER_HD void pool_covering_windows(int i, int window, int stride, int out, int* lo, int* hi) {
  const int first = i - window + 1;  // smallest window start that still reaches i
  *lo = first <= 0 ? 0 : (first + stride - 1) / stride;
  const int last = i / stride;
  *hi = last < out - 1 ? last : out - 1;
}

// Max: the window's maximum; average: the window's sum / (ph*pw).
cudaError_t pool2d_forward(const PoolShape& s, PoolMode mode, const float* x, float* y,
                           cudaStream_t stream);

// dx is overwritten. Max routes each dy to the first position of its window (row-major) where
// x equals the forward maximum y; average spreads dy/(ph*pw) over the window. Overlapping windows
// accumulate. Gather formulation (one thread per dx element, windows in ascending order): no
// atomics, deterministic.
cudaError_t pool2d_backward(const PoolShape& s, PoolMode mode, const float* x, const float* y,
                            const float* dy, float* dx, cudaStream_t stream);

}  // namespace fer::kernels::cuda
