#pragma once
// 2-D convolution on the CPU: NHWC input, OHWI weights, bias, explicit leading padding, any stride.
//
// Each OpenMP thread unfolds blocks of output pixels (im2col) into its own cache-sized slice of
// the workspace and runs single-threaded SGEMMs on them; there is no synchronisation inside the
// loops, so a core taken by another thread (the data loader) slows one thread, not every block.
// Forward: threads share the pixel blocks. Backward: each thread takes whole images (its folds
// of d(col) into dx never meet another thread's) and accumulates a private dw, summed at the end.
// 1x1, stride-1, unpadded convolutions are plain GEMMs on the input and need no workspace.
//
// Implementations: the im2col + OpenBLAS path above (always built), oneDNN's direct convolutions
// (kernels/cpu/conv2d_onednn.h; built when CMake finds oneDNN), and a backward kernel for one
// input channel (kernels/cpu/conv2d_c1.h; AVX-512 builds). ConvImpl picks among them;
// docs/cpu_performance.md has the measurements behind the default.
//
// s.math == MathType::bf16: oneDNN's bf16 primitives on CPUs with bf16 instructions, else the
// FP32 path (above) on operands rounded to bf16 (bf16.h: same numbers, slower); ConvImpl applies
// to the FP32 path only.
#include <cstddef>

#include "kernels/common/shapes.h"

namespace fer::kernels::cpu {

enum class ConvImpl {
  automatic,  // the fastest measured: one-input-channel backward on its own kernel
              // (conv2d_c1.h), everything else on oneDNN where it has an optimised kernel for
              // the shape, im2col elsewhere
  im2col,     // always the im2col + OpenBLAS path
  onednn,     // oneDNN wherever it takes the shape, im2col elsewhere (for A/B runs)
};

// The implementation the conv2d_* calls use from now on (process-wide). Its initial value comes
// from the environment at first use: FER_CPU_CONV=auto|im2col|onednn (default auto).
void set_conv_impl(ConvImpl impl);
ConvImpl conv_impl();
const char* conv_impl_name(ConvImpl impl);
// True when the build has oneDNN.
bool conv_onednn_compiled();
// The implementation conv2d_forward / conv2d_backward run for this shape under the current
// setting: "onednn", "im2col" or (backward only) "c1"; for bf16 shapes "onednn-bf16" or
// "bf16-emulated".
const char* conv_forward_impl_for(const ConvShape& s);
const char* conv_backward_impl_for(const ConvShape& s);

// Scratch bytes for conv2d_forward/backward on this shape, enough for either implementation (so
// set_conv_impl may change between the query and the call). im2col: about 1 MiB per thread plus
// one dw-sized partial per thread beyond the first (0 for 1x1 stride-1 unpadded convolutions);
// oneDNN: the weights in its blocked layouts, dw in its layout, and its scratchpad. It does not
// grow with the batch for the im2col part. The im2col thread count is OpenMP's maximum when the
// convolution kernels first run; later changes do not affect convolutions.
size_t conv2d_workspace_bytes(const ConvShape& s);

// y[n, oh, ow, k] = conv(x, w) + b. b may be null (no bias).
void conv2d_forward(const ConvShape& s, const float* x, const float* w, const float* b, float* y,
                    void* workspace);

// dw and db are overwritten; dx (may be null) is overwritten; db may be null (no bias).
void conv2d_backward(const ConvShape& s, const float* x, const float* w, const float* dy, float* dx,
                     float* dw, float* db, void* workspace);

}  // namespace fer::kernels::cpu
