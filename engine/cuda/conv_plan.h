#pragma once
// The host-side arithmetic of a GPU convolution plan, plain C++ (no CUDA types), so it is built
// and unit-tested in every build: how the padding is handed to cuDNN and how the workspace of one
// convolution call is laid out. The cuDNN part of the plan is engine/cuda/conv_cudnn.h.
#include <cstddef>
#include <string>

#include "kernels/common/shapes.h"

namespace fer {

using kernels::ConvShape;

// How a convolution's explicit padding is handed to cuDNN, which pads both sides of a dimension
// equally. The convolution itself is defined by pad_top/pad_left and oh/ow alone: output row j
// reads input rows j*stride - pad_top + [0, kh), zeros outside the input. cuDNN, given symmetric
// padding p, produces (h + 2p - kh)/stride + 1 rows with the same row mapping, so
//  - direct: when that count equals oh (and ow likewise) with p = pad_top (pad_left), cuDNN
//    computes exactly our convolution ("valid", odd-kernel "same" at stride 1, ...);
//  - padded copy: otherwise (TensorFlow "same" with an odd total padding puts the extra row at
//    the bottom, e.g. stride 2 on an even input or an even kernel), x is copied into a zeroed
//    buffer xp of (oh-1)*stride + kh rows and (ow-1)*stride + kw columns with x at offset
//    (pad_top, pad_left) (rows past the last window are left out), cuDNN runs with zero padding,
//    and the data gradient computed for xp is cropped back (x rows not in xp get 0).
struct ConvPadding {
  bool padded_copy = false;
  int pad_h = 0, pad_w = 0;  // symmetric padding given to cuDNN
  int in_h = 0, in_w = 0;    // spatial size of the tensor cuDNN reads (xp's when padded_copy)
};
// Throws std::invalid_argument for an impossible shape.
ConvPadding plan_conv_padding(const ConvShape& s);

// Byte offsets of the parts of one convolution's workspace (every part 256-byte aligned, in this
// order, none overlapping):
//   xp       FP32 padded copy of x (ConvPadding::padded_copy only), n x in_h x in_w x c floats;
//   x_bf16   bf16 copy of x (or of xp), n x in_h x in_w x c; reused for the bf16 data gradient;
//   w_bf16   bf16 copy of w, k x kh x kw x c; reused for the bf16 weight gradient;
//   y_bf16   bf16 y (forward output) or bf16 copy of dy, n x oh x ow x k;
//   cudnn    cuDNN's own workspace, the largest any of the three passes asked for.
// The bf16 parts exist only for s.math == MathType::bf16 (cuDNN's legacy API runs bf16 with bf16
// x, w and y and FP32 compute: "PSEUDO_BFLOAT16_CONFIG"); in FP32 they have size 0 and the layout
// is [xp][cudnn].
struct ConvWorkspace {
  size_t xp = 0, xp_bytes = 0;
  size_t x_bf16 = 0, x_bf16_bytes = 0;
  size_t w_bf16 = 0, w_bf16_bytes = 0;
  size_t y_bf16 = 0, y_bf16_bytes = 0;
  size_t cudnn = 0;  // = the bytes before cuDNN's part
  // The whole workspace given cuDNN's largest request (bytes).
  size_t total(size_t cudnn_bytes) const;
};
// Throws std::invalid_argument for an impossible shape (as plan_conv_padding).
ConvWorkspace plan_conv_workspace(const ConvShape& s, const ConvPadding& pad);

// One-line description used in error messages ("conv2d x[n,h,w,c] w[...] ... -> y[...]").
std::string describe(const ConvShape& s);

}  // namespace fer
