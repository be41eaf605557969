#pragma once
// 2-D convolution on the CPU: NHWC input, OHWI weights, bias, explicit leading padding, any stride.
//
// Each OpenMP thread unfolds blocks of output pixels (im2col) into its own cache-sized slice of
// the workspace and runs single-threaded SGEMMs on them; there is no synchronisation inside the
// loops, so a core taken by another thread (the data loader) slows one thread, not every block.
// Forward: threads share the pixel blocks. Backward: each thread takes whole images (its folds
// of d(col) into dx never meet another thread's) and accumulates a private dw, summed at the end.
// 1x1, stride-1, unpadded convolutions are plain GEMMs on the input and need no workspace.
#include <cstddef>

#include "kernels/common/shapes.h"

namespace fer::kernels::cpu {

// Scratch bytes for conv2d_forward/backward on this shape: about 1 MiB per thread plus one
// dw-sized partial per thread beyond the first; it does not grow with the batch (0 for 1x1
// stride-1 unpadded convolutions). The thread count is OpenMP's maximum when the convolution
// kernels first run; later changes do not affect convolutions.
size_t conv2d_workspace_bytes(const ConvShape& s);

// y[n, oh, ow, k] = conv(x, w) + b. b may be null (no bias).
void conv2d_forward(const ConvShape& s, const float* x, const float* w, const float* b, float* y,
                    void* workspace);

// dw and db are overwritten; dx (may be null) is overwritten; db may be null (no bias).
void conv2d_backward(const ConvShape& s, const float* x, const float* w, const float* dy, float* dx,
                     float* dw, float* db, void* workspace);

}  // namespace fer::kernels::cpu
