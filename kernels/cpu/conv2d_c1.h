#pragma once
// Backward pass of a convolution with one input channel (the first layer of every model: 48x48
// grey images) without im2col or oneDNN. Its weight gradient is a tiny product (K filters by
// kh*kw taps) summed over every output pixel; oneDNN's and the im2col path's kernels reach only
// 40-50 GFLOP/s on it (no input-channel dimension to vectorise over), while this one keeps one
// 16-filter accumulator per tap in AVX-512 registers and reads dy once: it runs at memory speed
// (model8: 16.6 -> about 3 ms a step). Used by ConvImpl::automatic (conv2d.h).
#include "kernels/common/shapes.h"

namespace fer::kernels::cpu::c1 {

// True when this build has the kernel for the shape: one input channel, a 3x3 or 5x5 window,
// at least one output pixel, and AVX-512.
bool supported(const ConvShape& s);

// Same contract as conv2d_backward (dw and db overwritten, dx computed when not null, db may be
// null); no workspace. Sums per output row in float, across rows in double.
void backward(const ConvShape& s, const float* x, const float* w, const float* dy, float* dx,
              float* dw, float* db);

}  // namespace fer::kernels::cpu::c1
