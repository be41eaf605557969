#pragma once
// Zero-padded copies for convolutions whose padding cuDNN cannot express (TensorFlow "same" with an
// odd total puts the extra row/column at the bottom/right; cuDNN pads both sides equally).
// The engine then runs cuDNN with zero padding on xp[n, hp, wp, c], where
//   xp[n, i, j, :] = x[n, i - pad_top, j - pad_left, :] inside x, 0 outside,
// and crops the data gradient back. The index maps below are plain host/device functions so that
// the host tests exercise the very arithmetic the kernels use.
#include <cstdint>

#include <cuda_runtime_api.h>

#include "kernels/common/host_device.h"

namespace fer::kernels::cuda {

// Row (or column) of x read by row i of the padded tensor, or -1 when it is a zero row.
FER_HD int pad_source_index(int i, int pad_before, int size) {
  const int s = i - pad_before;
  return (s >= 0 && s < size) ? s : -1;
}

// Row (or column) of the padded tensor that holds row r of x, or -1 when the padded tensor does
// not reach it (rows past the last window, which no output reads).
FER_HD int pad_target_index(int r, int pad_before, int padded_size) {
  const int p = r + pad_before;
  return p < padded_size ? p : -1;
}

// xp[n, hp, wp, c] <- zero-padded x[n, h, w, c].
cudaError_t pad_nhwc(int n, int h, int w, int c, int pad_top, int pad_left, int hp, int wp,
                     const float* x, float* xp, cudaStream_t stream);

// dx[n, h, w, c] <- dxp[n, hp, wp, c] cropped (rows/columns of x the padded tensor does not
// reach get 0: no output depends on them).
cudaError_t crop_nhwc(int n, int h, int w, int c, int pad_top, int pad_left, int hp, int wp,
                      const float* dxp, float* dx, cudaStream_t stream);

}  // namespace fer::kernels::cuda
