#pragma once
// The oneDNN side of the CPU convolution (built when CMake finds oneDNN: FER_HAVE_ONEDNN).
//
// Activations stay NHWC in our buffers (oneDNN's NHWC "brgconv"/jit kernels run on them in place);
// weights are reordered from our OHWI into the blocked layout each primitive prefers (and dw back
// from the blocked layout into OHWI), in the caller's workspace. Without blocked weights oneDNN
// 2.6 falls back to its reference loops on NHWC, hence the reorders; they move one weight tensor
// per call, a few percent of the convolution's time at worst.
//
// MathType::bf16 shapes (only on CPUs with bf16 instructions, bf16.h): the primitives take bf16
// x, w and dy, converted into the workspace by reorders planned with the primitives, and write
// FP32 y, dx, dw and db (FP32 accumulation). Without bf16 hardware they are never "supported".
//
// Primitives are built once per ConvShape, on first use (or on the workspace query), and kept for
// the process: a training step creates nothing. oneDNN's scratchpad is user-managed and lives in
// the workspace too, so conv2d_workspace_bytes stays the only scratch a convolution needs.
// Threads: oneDNN (Debian's build) runs on the same libgomp OpenMP pool as the other kernels; a
// primitive keeps the thread count it was built with (OpenMP's maximum at first use of the shape).
#include <cstddef>

#include "kernels/common/shapes.h"

namespace fer::kernels::cpu::onednn {

// True when this build has oneDNN.
bool compiled();

// Whether oneDNN has an optimised (non-reference) kernel for this shape's forward pass, and for
// both backward passes (data and weights). Builds and caches the primitives on first call;
// false for every shape in builds without oneDNN.
bool forward_supported(const ConvShape& s);
bool backward_supported(const ConvShape& s);

// Workspace bytes for forward and backward on this shape (0 when unsupported).
size_t workspace_bytes(const ConvShape& s);

// Same contract as conv2d_forward/conv2d_backward (conv2d.h); callers check *_supported first.
void forward(const ConvShape& s, const float* x, const float* w, const float* b, float* y,
             void* workspace);
void backward(const ConvShape& s, const float* x, const float* w, const float* dy, float* dx,
              float* dw, float* db, void* workspace);

// oneDNN's implementation names for the shape's three primitives ("brgconv:avx512_core", ...),
// for logs and benchmarks; empty strings when unsupported or not compiled.
struct ImplNames {
  const char* forward = "";
  const char* backward_data = "";
  const char* backward_weights = "";
};
ImplNames impl_names(const ConvShape& s);

}  // namespace fer::kernels::cpu::onednn
