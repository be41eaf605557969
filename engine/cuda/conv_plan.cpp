// Padding plan and workspace layout of a GPU convolution (see conv_plan.h); plain C++.
#include "engine/cuda/conv_plan.h"

#include <stdexcept>
#include <string>

namespace fer {

std::string describe(const ConvShape& s) {
  return "conv2d x[" + std::to_string(s.n) + "," + std::to_string(s.h) + "," + std::to_string(s.w) +
         "," + std::to_string(s.c) + "] w[" + std::to_string(s.k) + "," + std::to_string(s.kh) +
         "," + std::to_string(s.kw) + "," + std::to_string(s.c) + "] stride " +
         std::to_string(s.stride_h) + "x" + std::to_string(s.stride_w) + " pad_top " +
         std::to_string(s.pad_top) + " pad_left " + std::to_string(s.pad_left) + " -> y[" +
         std::to_string(s.n) + "," + std::to_string(s.oh) + "," + std::to_string(s.ow) + "," +
         std::to_string(s.k) + "]" + (s.math == kernels::MathType::bf16 ? " bf16" : "");
}

namespace {

// Rows cuDNN produces from `in` rows with symmetric padding `pad`, or -1 when it would refuse.
int cudnn_output_size(int in, int pad, int kernel, int stride) {
  const int span = in + 2 * pad - kernel;
  return span < 0 ? -1 : span / stride + 1;
}

}  // namespace

ConvPadding plan_conv_padding(const ConvShape& s) {
  if (s.n <= 0 || s.h <= 0 || s.w <= 0 || s.c <= 0 || s.k <= 0 || s.kh <= 0 || s.kw <= 0 ||
      s.stride_h <= 0 || s.stride_w <= 0 || s.pad_top < 0 || s.pad_left < 0 || s.oh <= 0 ||
      s.ow <= 0) {
    throw std::invalid_argument("impossible convolution shape: " + describe(s));
  }
  ConvPadding p;
  const bool direct = cudnn_output_size(s.h, s.pad_top, s.kh, s.stride_h) == s.oh &&
                      cudnn_output_size(s.w, s.pad_left, s.kw, s.stride_w) == s.ow;
  if (direct) {
    p.padded_copy = false;
    p.pad_h = s.pad_top;
    p.pad_w = s.pad_left;
    p.in_h = s.h;
    p.in_w = s.w;
  } else {
    p.padded_copy = true;
    p.pad_h = 0;
    p.pad_w = 0;
    p.in_h = (s.oh - 1) * s.stride_h + s.kh;
    p.in_w = (s.ow - 1) * s.stride_w + s.kw;
  }
  return p;
}

namespace {

constexpr size_t kAlign = 256;
size_t align_up(size_t v) { return (v + kAlign - 1) / kAlign * kAlign; }

}  // namespace

size_t ConvWorkspace::total(size_t cudnn_bytes) const { return cudnn + align_up(cudnn_bytes); }

ConvWorkspace plan_conv_workspace(const ConvShape& s, const ConvPadding& pad) {
  if (s.n <= 0 || s.c <= 0 || s.k <= 0 || s.kh <= 0 || s.kw <= 0 || s.oh <= 0 || s.ow <= 0 ||
      pad.in_h <= 0 || pad.in_w <= 0) {
    throw std::invalid_argument("impossible convolution shape: " + describe(s));
  }
  const size_t in_elems = size_t(s.n) * size_t(pad.in_h) * size_t(pad.in_w) * size_t(s.c);
  const bool bf16 = s.math == kernels::MathType::bf16;
  constexpr size_t kBf16 = 2;  // bytes of a bf16 element
  ConvWorkspace ws;
  size_t at = 0;
  auto place = [&at](size_t* offset, size_t* size, size_t bytes) {
    *offset = at;
    *size = bytes;
    at += align_up(bytes);
  };
  place(&ws.xp, &ws.xp_bytes, pad.padded_copy ? in_elems * sizeof(float) : 0);
  place(&ws.x_bf16, &ws.x_bf16_bytes, bf16 ? in_elems * kBf16 : 0);
  place(&ws.w_bf16, &ws.w_bf16_bytes, bf16 ? size_t(s.w_size()) * kBf16 : 0);
  place(&ws.y_bf16, &ws.y_bf16_bytes, bf16 ? size_t(s.y_size()) * kBf16 : 0);
  ws.cudnn = at;
  return ws;
}

}  // namespace fer
