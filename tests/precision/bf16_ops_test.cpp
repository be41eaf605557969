// bf16 matrix ops on the CPU (MathType::bf16 convolutions and dense layers) against the double
// reference on the unrounded FP32 data, on both paths of kernels/cpu/bf16.h: emulated (runs on
// every CPU) and native oneDNN (skipped, visibly, on CPUs without AVX512-BF16/AMX-BF16).
//
// Tolerances, derived. bf16 has p = 8 significand bits (7 stored + the implicit one), so rounding
// an FP32 value to nearest has relative error d with |d| <= u = 2^-p = 2^-8 (half an ulp, 2^(e-8),
// over the smallest value of the binade, 2^e; the often-quoted 2^-9 is half of that ulp relative
// to the binade's top, and this test's first case would fail with it: 276.9 rounds to 276, off by
// 0.9 = 2^-8.3 relative). d is roughly uniform, rms(d) <= u/sqrt(3). A product of two rounded
// operands is exact in FP32 and carries relative error d_a + d_b (rms <= u*sqrt(2/3) = 0.82u). A
// K-term dot product with FP32 accumulation therefore has an error that is a sum of K independent
// terms: rms sqrt(K) * 0.82u * rms(a) rms(b), growing like sqrt(K); FP32 accumulation adds about
// sqrt(K) * 2^-24 relative, negligible. With zero-mean data the dot product itself is also
// sqrt(K) rms(a) rms(b), so:
//  - per element: |error| <= 6 sqrt(K) u rms(a) rms(b) (a 7-sigma bound on each element);
//  - relative L2 over the tensor: at most about 0.82u = 3.2e-3; the test allows 4u = 1.6e-2;
//  - and the rounding must show: relative L2 against the FP32 op at least u/8 (FP32-only noise is
//    ~1e-7), so a bf16 op silently running FP32 fails.
// Native and emulated multiply the same bf16 values exactly and differ only in FP32 summation
// order: relative L2 below 1e-5 between them.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "kernels/cpu/bf16.h"
#include "kernels/cpu/conv2d.h"
#include "kernels/cpu/dense.h"
#include "tests/ops/op_test_util.h"
#include "tests/reference/reference_ops.h"

namespace fer {
namespace {

using kernels::ConvShape;
using kernels::DenseShape;
using kernels::MathType;
using kernels::cpu::Bf16Impl;
using testing::Padding;

constexpr double kU = 1.0 / 256;  // 2^-8: bf16's unit roundoff (8 significand bits)
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// ------------------------------------------------------------------ rounding
TEST(Bf16Rounding, RoundsToNearestEvenAndKeepsSpecials) {
  using kernels::cpu::float_to_bf16;
  using kernels::cpu::round_to_bf16;
  EXPECT_EQ(float_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(float_to_bf16(-2.0f), 0xc000);
  // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even (1.0).
  EXPECT_EQ(round_to_bf16(1.0f + 1.0f / 256), 1.0f);
  // 1 + 3 * 2^-8 lies halfway between 1 + 2^-7 and 1 + 2^-6: ties go to the even (1 + 2^-6).
  EXPECT_EQ(round_to_bf16(1.0f + 3.0f / 256), 1.0f + 1.0f / 64);
  // Just above the halfway point rounds up.
  EXPECT_EQ(round_to_bf16(1.0f + 1.0f / 256 + 1.0f / 65536), 1.0f + 1.0f / 128);
  EXPECT_TRUE(std::isnan(round_to_bf16(kNaN)));
  EXPECT_TRUE(std::isinf(round_to_bf16(std::numeric_limits<float>::infinity())));
  EXPECT_TRUE(std::isinf(round_to_bf16(std::numeric_limits<float>::max())));  // rounds past bf16's max
  EXPECT_EQ(round_to_bf16(0.0f), 0.0f);
  // A NaN whose payload lies only in the low 16 bits must stay a NaN.
  uint32_t low_nan = 0x7f800001u;
  float f;
  std::memcpy(&f, &low_nan, sizeof f);
  EXPECT_TRUE(std::isnan(round_to_bf16(f)));
}

TEST(Bf16Rounding, ArrayRoundingMatchesScalarAndBoundsTheError) {
  const std::vector<float> x = testing::random_floats(100000, 5, -300.0f, 300.0f);
  std::vector<float> y(x.size());
  kernels::cpu::round_to_bf16(x.data(), y.data(), int64_t(x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(y[i], kernels::cpu::round_to_bf16(x[i])) << i;
    ASSERT_LE(std::fabs(double(y[i]) - double(x[i])), kU * std::fabs(double(x[i]))) << i;
  }
  const std::vector<float> specials = {kNaN, -kNaN, std::numeric_limits<float>::infinity(), -0.0f};
  std::vector<float> out(specials.size());
  kernels::cpu::round_to_bf16(specials.data(), out.data(), int64_t(specials.size()));
  EXPECT_TRUE(std::isnan(out[0]));
  EXPECT_TRUE(std::isnan(out[1]));
  EXPECT_TRUE(std::isinf(out[2]));
  EXPECT_EQ(out[3], 0.0f);
}

// ------------------------------------------------------------------ helpers
double rms(const std::vector<float>& v) {
  double s = 0;
  for (float f : v) s += double(f) * double(f);
  return std::sqrt(s / double(v.size()));
}

// Checks got (bf16 op) against want (double reference on unrounded data) and fp32 (the FP32 op).
void expect_bf16_close(const std::string& what, const std::vector<float>& got,
                       const std::vector<double>& want, const std::vector<float>& fp32, double terms,
                       double rms_a, double rms_b) {
  ASSERT_EQ(got.size(), want.size());
  const double element_bound = 6.0 * std::sqrt(terms) * kU * rms_a * rms_b;
  double worst = 0;
  size_t worst_at = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double e = std::fabs(double(got[i]) - want[i]);
    if (!(e <= worst)) {
      worst = e;
      worst_at = i;
    }
  }
  EXPECT_LE(worst, element_bound) << what << ": element " << worst_at << " got " << got[worst_at]
                                  << " want " << want[worst_at] << " (K = " << terms << ")";
  const double rel = testing::rel_l2_error(got.data(), want.data(), got.size());
  EXPECT_LT(rel, 4 * kU) << what << ": relative L2 error against the double reference";
  const double vs_fp32 = testing::rel_l2_error(got.data(), fp32.data(), got.size());
  EXPECT_GT(vs_fp32, kU / 8) << what << ": no bf16 rounding visible (did it run in FP32?)";
}

// Runs `body` with the bf16 implementation set to impl; skips the native case on CPUs without it.
class Bf16ImplScope {
 public:
  explicit Bf16ImplScope(Bf16Impl impl) : saved_(kernels::cpu::bf16_impl()) { kernels::cpu::set_bf16_impl(impl); }
  ~Bf16ImplScope() { kernels::cpu::set_bf16_impl(saved_); }

 private:
  Bf16Impl saved_;
};

#define FER_SKIP_WITHOUT_NATIVE_BF16()                                                          \
  if (!kernels::cpu::cpu_bf16_support().native()) {                                             \
    GTEST_SKIP() << "this CPU has no native bf16 (" << kernels::cpu::cpu_bf16_support().summary \
                 << ")";                                                                        \
  }

// ------------------------------------------------------------------ convolution
struct ConvCase {
  const char* name;
  ConvShape s;
  bool bias = true;
};

std::vector<ConvCase> conv_cases() {
  using testing::conv_shape;
  return {
      {"first_layer_c1_same", conv_shape(2, 11, 9, 1, 16, 3, 3, 1, 1, Padding::same)},
      {"k5x5_same_odd", conv_shape(3, 8, 7, 8, 16, 5, 5, 1, 1, Padding::same)},
      {"stride2_same_odd", conv_shape(2, 9, 7, 16, 16, 3, 3, 2, 2, Padding::same)},
      {"no_bias_valid", conv_shape(2, 10, 10, 32, 32, 3, 3, 1, 1, Padding::valid), false},
      {"model_like_c64_k128", conv_shape(3, 12, 12, 64, 128, 3, 3, 1, 1, Padding::valid)},
  };
}

struct ConvRun {
  std::vector<float> y, dx, dw, db;
};

ConvRun run_conv(const ConvShape& s, bool bias, const std::vector<float>& x, const std::vector<float>& w,
                 const std::vector<float>& b, const std::vector<float>& dy) {
  ConvRun r{std::vector<float>(size_t(s.y_size()), kNaN), std::vector<float>(size_t(s.x_size()), kNaN),
            std::vector<float>(size_t(s.w_size()), kNaN), std::vector<float>(size_t(s.k), kNaN)};
  std::vector<char> ws(kernels::cpu::conv2d_workspace_bytes(s), char(0xff));
  kernels::cpu::conv2d_forward(s, x.data(), w.data(), bias ? b.data() : nullptr, r.y.data(), ws.data());
  kernels::cpu::conv2d_backward(s, x.data(), w.data(), dy.data(), r.dx.data(), r.dw.data(),
                                bias ? r.db.data() : nullptr, ws.data());
  return r;
}

class Bf16Conv : public ::testing::TestWithParam<std::tuple<ConvCase, Bf16Impl>> {};

TEST_P(Bf16Conv, MatchesTheReferenceWithinBf16Rounding) {
  const ConvCase& c = std::get<0>(GetParam());
  const Bf16Impl impl = std::get<1>(GetParam());
  if (impl == Bf16Impl::automatic) FER_SKIP_WITHOUT_NATIVE_BF16();
  Bf16ImplScope scope(impl);
  ConvShape s = c.s;
  s.math = MathType::bf16;
  ConvShape s32 = c.s;
  RecordProperty("forward_impl", kernels::cpu::conv_forward_impl_for(s));
  RecordProperty("backward_impl", kernels::cpu::conv_backward_impl_for(s));
  if (impl == Bf16Impl::automatic) {
    // The model-like shape must take oneDNN's bf16 kernels on a bf16 CPU, not the emulation.
    if (std::string(c.name) == "model_like_c64_k128") {
      EXPECT_STREQ(kernels::cpu::conv_forward_impl_for(s), "onednn-bf16");
      EXPECT_STREQ(kernels::cpu::conv_backward_impl_for(s), "onednn-bf16");
    }
  } else {
    EXPECT_STREQ(kernels::cpu::conv_forward_impl_for(s), "bf16-emulated");
  }

  const auto x = testing::random_floats(size_t(s.x_size()), 21);
  const auto w = testing::random_floats(size_t(s.w_size()), 22, -0.5f, 0.5f);
  const auto b = testing::random_floats(size_t(s.k), 23);
  const auto dy = testing::random_floats(size_t(s.y_size()), 24);
  const ConvRun got = run_conv(s, c.bias, x, w, b, dy);
  const ConvRun f32 = run_conv(s32, c.bias, x, w, b, dy);

  std::vector<double> y(got.y.size()), dx(got.dx.size()), dw(got.dw.size()), db(size_t(s.k));
  const auto xd = testing::to_double(x), wd = testing::to_double(w), bd = testing::to_double(b),
             dyd = testing::to_double(dy);
  reference::conv2d_forward(s32, xd.data(), wd.data(), c.bias ? bd.data() : nullptr, y.data());
  reference::conv2d_backward(s32, xd.data(), wd.data(), dyd.data(), dx.data(), dw.data(), db.data());

  expect_bf16_close("y", got.y, y, f32.y, double(s.kh) * s.kw * s.c, rms(x), rms(w));
  expect_bf16_close("dx", got.dx, dx, f32.dx, double(s.kh) * s.kw * s.k, rms(dy), rms(w));
  expect_bf16_close("dw", got.dw, dw, f32.dw, double(s.n) * s.oh * s.ow, rms(x), rms(dy));
  if (c.bias) {
    // A convolution's db sums the bf16 dy (oneDNN's backward-weights primitive sees only the bf16
    // dy; the emulation does the same): a K = n*oh*ow term sum of rounded values, each off by at
    // most u relative, so relative L2 within 4u as above.
    EXPECT_LT(testing::rel_l2_error(got.db.data(), db.data(), db.size()), 4 * kU);
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, Bf16Conv,
                         ::testing::Combine(::testing::ValuesIn(conv_cases()),
                                            ::testing::Values(Bf16Impl::emulated, Bf16Impl::automatic)),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param).name) +
                                  (std::get<1>(info.param) == Bf16Impl::emulated ? "_emulated" : "_native");
                         });

TEST(Bf16Conv, NativeAgreesWithEmulationUpToSummationOrder) {
  FER_SKIP_WITHOUT_NATIVE_BF16();
  ConvShape s = testing::conv_shape(4, 14, 14, 64, 64, 3, 3, 1, 1, Padding::same);
  s.math = MathType::bf16;
  const auto x = testing::random_floats(size_t(s.x_size()), 31);
  const auto w = testing::random_floats(size_t(s.w_size()), 32, -0.5f, 0.5f);
  const auto b = testing::random_floats(size_t(s.k), 33);
  const auto dy = testing::random_floats(size_t(s.y_size()), 34);
  ConvRun native, emulated;
  {
    Bf16ImplScope scope(Bf16Impl::automatic);
    native = run_conv(s, true, x, w, b, dy);
  }
  {
    Bf16ImplScope scope(Bf16Impl::emulated);
    emulated = run_conv(s, true, x, w, b, dy);
  }
  EXPECT_LT(testing::rel_l2_error(native.y.data(), emulated.y.data(), native.y.size()), 1e-5);
  EXPECT_LT(testing::rel_l2_error(native.dx.data(), emulated.dx.data(), native.dx.size()), 1e-5);
  EXPECT_LT(testing::rel_l2_error(native.dw.data(), emulated.dw.data(), native.dw.size()), 1e-5);
  EXPECT_LT(testing::rel_l2_error(native.db.data(), emulated.db.data(), native.db.size()), 1e-5);
}

// ------------------------------------------------------------------ dense
struct DenseCase {
  const char* name;
  DenseShape s;
  bool bias = true;
  bool with_dx = true;
};

std::vector<DenseCase> dense_cases() {
  return {
      {"odd_5x37x11", {5, 37, 11}},
      {"no_bias_no_dx", {7, 64, 9}, false, false},
      {"model_like_64x2048x256", {64, 2048, 256}},
      {"logits_32x1024x6", {32, 1024, 6}},
  };
}

struct DenseRun {
  std::vector<float> y, dx, dw, db;
};

DenseRun run_dense(const DenseShape& s, const DenseCase& c, const std::vector<float>& x,
                   const std::vector<float>& w, const std::vector<float>& b, const std::vector<float>& dy) {
  DenseRun r{std::vector<float>(size_t(s.n) * s.out, kNaN), std::vector<float>(size_t(s.n) * s.in, kNaN),
             std::vector<float>(size_t(s.in) * s.out, kNaN), std::vector<float>(size_t(s.out), kNaN)};
  kernels::cpu::dense_forward(s, x.data(), w.data(), c.bias ? b.data() : nullptr, r.y.data());
  kernels::cpu::dense_backward(s, x.data(), w.data(), dy.data(), c.with_dx ? r.dx.data() : nullptr, r.dw.data(),
                               c.bias ? r.db.data() : nullptr);
  return r;
}

class Bf16Dense : public ::testing::TestWithParam<std::tuple<DenseCase, Bf16Impl>> {};

TEST_P(Bf16Dense, MatchesTheReferenceWithinBf16Rounding) {
  const DenseCase& c = std::get<0>(GetParam());
  const Bf16Impl impl = std::get<1>(GetParam());
  if (impl == Bf16Impl::automatic) FER_SKIP_WITHOUT_NATIVE_BF16();
  Bf16ImplScope scope(impl);
  DenseShape s = c.s;
  s.math = MathType::bf16;
  const DenseShape s32 = c.s;
  const auto x = testing::random_floats(size_t(s.n) * s.in, 41);
  const auto w = testing::random_floats(size_t(s.in) * s.out, 42, -0.5f, 0.5f);
  const auto b = testing::random_floats(size_t(s.out), 43);
  const auto dy = testing::random_floats(size_t(s.n) * s.out, 44);
  const DenseRun got = run_dense(s, c, x, w, b, dy);
  const DenseRun f32 = run_dense(s32, c, x, w, b, dy);

  std::vector<double> y(got.y.size()), dx(got.dx.size()), dw(got.dw.size()), db(size_t(s.out));
  const auto xd = testing::to_double(x), wd = testing::to_double(w), bd = testing::to_double(b),
             dyd = testing::to_double(dy);
  reference::dense_forward(s32, xd.data(), wd.data(), c.bias ? bd.data() : nullptr, y.data());
  reference::dense_backward(s32, xd.data(), wd.data(), dyd.data(), dx.data(), dw.data(), db.data());
  expect_bf16_close("y", got.y, y, f32.y, s.in, rms(x), rms(w));
  expect_bf16_close("dw", got.dw, dw, f32.dw, s.n, rms(x), rms(dy));
  if (c.with_dx) expect_bf16_close("dx", got.dx, dx, f32.dx, s.out, rms(dy), rms(w));
  // A dense layer's db sums the FP32 dy (dense_bf16.h): as exact as the FP32 op.
  if (c.bias) {
    EXPECT_LT(testing::rel_l2_error(got.db.data(), db.data(), db.size()), 1e-5);
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, Bf16Dense,
                         ::testing::Combine(::testing::ValuesIn(dense_cases()),
                                            ::testing::Values(Bf16Impl::emulated, Bf16Impl::automatic)),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param).name) +
                                  (std::get<1>(info.param) == Bf16Impl::emulated ? "_emulated" : "_native");
                         });

TEST(Bf16Support, SummaryNamesTheFeatures) {
  const auto& s = kernels::cpu::cpu_bf16_support();
  EXPECT_NE(s.summary.find("AVX512-BF16"), std::string::npos);
  EXPECT_NE(s.summary.find("AMX-BF16"), std::string::npos);
  // native() needs one of the two instruction sets.
  if (s.native()) {
    EXPECT_TRUE(s.avx512_bf16 || s.amx_bf16);
  }
  RecordProperty("bf16_support", s.summary);
}

}  // namespace
}  // namespace fer
