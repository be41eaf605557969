// Host-only checks (no GPU needed) of how CudaBackend expresses a convolution's padding to cuDNN:
// the direct/padded-copy decision, and that "zero-pad x into xp, convolve with no padding, crop the
// data gradient" is the same convolution as the one defined by pad_top/pad_left. The pad/crop
// index maps are the very functions the CUDA kernels use (kernels/cuda/conv_pad.cuh); the
// convolution itself is the double-precision oracle of tests/reference.
#include <gtest/gtest.h>

#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/cuda/cuda_backend.h"
#include "kernels/cuda/conv_pad.cuh"
#include "tests/ops/op_test_util.h"
#include "tests/reference/reference_ops.h"

namespace fer::kernels {
// Readable test parameters (found by argument-dependent lookup).
inline void PrintTo(const ConvShape& s, std::ostream* os) { *os << describe(s); }
}  // namespace fer::kernels

namespace fer {
namespace {

using kernels::cuda::pad_source_index;
using kernels::cuda::pad_target_index;
using testing::conv_shape;
using testing::Padding;

// What cuDNN produces with symmetric padding (its documented output-size formula).
int cudnn_rows(int in, int pad, int k, int stride) { return (in + 2 * pad - k) / stride + 1; }

TEST(ConvPaddingPlan, SymmetricSameAndValidAreDirect) {
  for (const ConvShape& s : {conv_shape(2, 48, 48, 1, 64, 3, 3, 1, 1, Padding::same),
                             conv_shape(2, 12, 12, 8, 8, 5, 5, 1, 1, Padding::same),
                             conv_shape(2, 9, 7, 3, 4, 3, 3, 2, 2, Padding::same),
                             conv_shape(2, 10, 11, 3, 4, 3, 3, 2, 2, Padding::valid),
                             conv_shape(1, 5, 5, 2, 3, 5, 5, 1, 1, Padding::valid)}) {
    const ConvPadding p = plan_conv_padding(s);
    EXPECT_FALSE(p.padded_copy) << describe(s);
    EXPECT_EQ(p.pad_h, s.pad_top);
    EXPECT_EQ(p.pad_w, s.pad_left);
    EXPECT_EQ(cudnn_rows(p.in_h, p.pad_h, s.kh, s.stride_h), s.oh) << describe(s);
    EXPECT_EQ(cudnn_rows(p.in_w, p.pad_w, s.kw, s.stride_w), s.ow) << describe(s);
  }
}

TEST(ConvPaddingPlan, AsymmetricSameUsesPaddedCopy) {
  for (const ConvShape& s : {conv_shape(2, 8, 8, 4, 5, 3, 3, 2, 2, Padding::same),
                             conv_shape(2, 48, 48, 1, 8, 3, 3, 2, 2, Padding::same),
                             conv_shape(2, 6, 6, 3, 4, 2, 2, 1, 1, Padding::same),
                             conv_shape(2, 11, 10, 3, 4, 4, 2, 1, 2, Padding::same)}) {
    const ConvPadding p = plan_conv_padding(s);
    EXPECT_TRUE(p.padded_copy) << describe(s);
    EXPECT_EQ(p.pad_h, 0);
    EXPECT_EQ(p.pad_w, 0);
    EXPECT_EQ(p.in_h, (s.oh - 1) * s.stride_h + s.kh);
    EXPECT_EQ(p.in_w, (s.ow - 1) * s.stride_w + s.kw);
    EXPECT_EQ(cudnn_rows(p.in_h, 0, s.kh, s.stride_h), s.oh) << describe(s);
    EXPECT_EQ(cudnn_rows(p.in_w, 0, s.kw, s.stride_w), s.ow) << describe(s);
  }
}

TEST(ConvPaddingPlan, RejectsImpossibleShapes) {
  ConvShape s = conv_shape(1, 4, 4, 1, 1, 3, 3, 1, 1, Padding::same);
  s.oh = 0;
  EXPECT_THROW(plan_conv_padding(s), std::invalid_argument);
  s = conv_shape(1, 4, 4, 1, 1, 3, 3, 1, 1, Padding::same);
  s.pad_top = -1;
  EXPECT_THROW(plan_conv_padding(s), std::invalid_argument);
}

// Host emulation of the padded-copy path with the kernels' index maps.
std::vector<double> pad_host(const ConvShape& s, const ConvPadding& p, const std::vector<double>& x) {
  std::vector<double> xp(size_t(s.n) * p.in_h * p.in_w * s.c);
  for (int b = 0; b < s.n; ++b)
    for (int i = 0; i < p.in_h; ++i)
      for (int j = 0; j < p.in_w; ++j)
        for (int ch = 0; ch < s.c; ++ch) {
          const int si = pad_source_index(i, s.pad_top, s.h);
          const int sj = pad_source_index(j, s.pad_left, s.w);
          xp[((size_t(b) * p.in_h + i) * p.in_w + j) * s.c + ch] =
              (si >= 0 && sj >= 0) ? x[((size_t(b) * s.h + si) * s.w + sj) * s.c + ch] : 0.0;
        }
  return xp;
}

std::vector<double> crop_host(const ConvShape& s, const ConvPadding& p,
                              const std::vector<double>& dxp) {
  std::vector<double> dx(size_t(s.x_size()));
  for (int b = 0; b < s.n; ++b)
    for (int r = 0; r < s.h; ++r)
      for (int j = 0; j < s.w; ++j)
        for (int ch = 0; ch < s.c; ++ch) {
          const int pr = pad_target_index(r, s.pad_top, p.in_h);
          const int pj = pad_target_index(j, s.pad_left, p.in_w);
          dx[((size_t(b) * s.h + r) * s.w + j) * s.c + ch] =
              (pr >= 0 && pj >= 0) ? dxp[((size_t(b) * p.in_h + pr) * p.in_w + pj) * s.c + ch]
                                   : 0.0;
        }
  return dx;
}

class PaddedCopyEquivalence : public ::testing::TestWithParam<ConvShape> {};

TEST_P(PaddedCopyEquivalence, SameConvolutionForwardAndBackward) {
  const ConvShape s = GetParam();
  // Force the padded-copy scheme even where direct would do: it must be exact for every shape.
  ConvPadding p;
  p.padded_copy = true;
  p.in_h = (s.oh - 1) * s.stride_h + s.kh;
  p.in_w = (s.ow - 1) * s.stride_w + s.kw;
  ConvShape sp = s;  // the convolution cuDNN runs on xp
  sp.h = p.in_h;
  sp.w = p.in_w;
  sp.pad_top = 0;
  sp.pad_left = 0;

  const auto x = testing::to_double(testing::random_floats(size_t(s.x_size()), 1));
  const auto w = testing::to_double(testing::random_floats(size_t(s.w_size()), 2));
  const auto dy = testing::to_double(testing::random_floats(size_t(s.y_size()), 3));

  std::vector<double> y(size_t(s.y_size())), dx(size_t(s.x_size())), dw(size_t(s.w_size()));
  reference::conv2d_forward(s, x.data(), w.data(), nullptr, y.data());
  reference::conv2d_backward(s, x.data(), w.data(), dy.data(), dx.data(), dw.data(), nullptr);

  const auto xp = pad_host(s, p, x);
  std::vector<double> yp(size_t(s.y_size())), dxp(xp.size()), dwp(size_t(s.w_size()));
  reference::conv2d_forward(sp, xp.data(), w.data(), nullptr, yp.data());
  reference::conv2d_backward(sp, xp.data(), w.data(), dy.data(), dxp.data(), dwp.data(), nullptr);
  const auto dx_cropped = crop_host(s, p, dxp);

  EXPECT_LT(testing::rel_l2_error(yp, y), 1e-12) << describe(s);
  EXPECT_LT(testing::rel_l2_error(dwp, dw), 1e-12) << describe(s);
  EXPECT_LT(testing::rel_l2_error(dx_cropped, dx), 1e-12) << describe(s);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, PaddedCopyEquivalence,
    ::testing::Values(conv_shape(2, 8, 8, 2, 3, 3, 3, 2, 2, Padding::same),    // pad 0 top, 1 bottom
                      conv_shape(1, 6, 6, 1, 2, 2, 2, 1, 1, Padding::same),    // even kernel
                      conv_shape(2, 11, 10, 3, 2, 4, 2, 1, 2, Padding::same),  // mixed
                      conv_shape(1, 7, 9, 2, 2, 3, 3, 1, 1, Padding::same),    // symmetric
                      conv_shape(2, 10, 11, 2, 3, 3, 3, 2, 2, Padding::valid), // unread rows
                      conv_shape(1, 9, 8, 1, 2, 5, 5, 3, 3, Padding::same),    // stride 3, 5x5
                      conv_shape(1, 5, 5, 1, 1, 4, 4, 2, 2, Padding::same)),   // pad 1 top, 2 bottom
    [](const ::testing::TestParamInfo<ConvShape>& info) {
      const ConvShape& s = info.param;
      std::ostringstream name;
      name << "h" << s.h << "w" << s.w << "_k" << s.kh << "x" << s.kw << "_s" << s.stride_h << "x"
           << s.stride_w << "_pad" << s.pad_top << "x" << s.pad_left;
      return name.str();
    });

}  // namespace
}  // namespace fer
