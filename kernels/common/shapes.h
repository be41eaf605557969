#pragma once
// Plain shape descriptors shared by the CPU and CUDA kernels. Layout is NHWC throughout.
#include <cstdint>

namespace fer::kernels {

enum class Act : int { linear = 0, relu = 1, softmax = 2 };
enum class PoolMode : int { max = 0, average = 1 };

// Element type of the operands of a matrix op (convolution, dense). f32: FP32 operands (on CUDA
// TF32 when the backend enables it). bf16: the activations, weights and output gradients are
// rounded to bfloat16 (8 significand bits) at the op and the products accumulate in FP32; the
// op's inputs and outputs stay FP32 buffers, so everything around it (BN statistics, loss,
// optimizer, master weights) is FP32. Chosen once per plan (engine/precision.h).
enum class MathType : int { f32 = 0, bf16 = 1 };

// Convolution of x[n, h, w, c] with weights w[k, kh, kw, c] (OHWI, cuDNN's NHWC filter layout)
// plus bias[k], giving y[n, oh, ow, k]. pad_top/pad_left are the leading zero rows/columns
// (TensorFlow "same" puts the odd one at the bottom/right).
struct ConvShape {
  int n = 0, h = 0, w = 0, c = 0;
  int k = 0, kh = 0, kw = 0;
  int stride_h = 1, stride_w = 1;
  int pad_top = 0, pad_left = 0;
  int oh = 0, ow = 0;
  MathType math = MathType::f32;
  int64_t x_size() const { return int64_t(n) * h * w * c; }
  int64_t y_size() const { return int64_t(n) * oh * ow * k; }
  int64_t w_size() const { return int64_t(k) * kh * kw * c; }
  int64_t flops() const { return 2LL * n * oh * ow * k * kh * kw * c; }
};

// Dense: y[n, out] = x[n, in] * w[in, out] + b[out] (Keras' kernel layout).
struct DenseShape {
  int n = 0, in = 0, out = 0;
  MathType math = MathType::f32;
  int64_t flops() const { return 2LL * n * in * out; }
};

// Pooling over windows of x[n, h, w, c] giving y[n, oh, ow, c], "valid" padding.
struct PoolShape {
  int n = 0, h = 0, w = 0, c = 0;
  int ph = 0, pw = 0;
  int stride_h = 1, stride_w = 1;
  int oh = 0, ow = 0;
  int64_t x_size() const { return int64_t(n) * h * w * c; }
  int64_t y_size() const { return int64_t(n) * oh * ow * c; }
};

// Batch normalisation over `rows` samples of `channels` features: rows = n*h*w after a
// convolution (per channel), rows = n after a dense layer (per feature).
struct BatchNormShape {
  int64_t rows = 0;
  int channels = 0;
};

struct AdamParams {
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, epsilon = 1e-7f;
  int64_t step = 1;  // 1-based step number used for bias correction
};

struct SgdParams {
  float lr = 1e-2f, momentum = 0.0f;
  bool nesterov = false;
};

}  // namespace fer::kernels
