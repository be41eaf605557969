// bf16 convolutions (cuDNN) and dense layers (cuBLAS) on the GPU against the CPU backend's bf16 ops
// in their emulated form (kernels/cpu/bf16.h: operands rounded to bf16 in FP32 buffers, then the
// FP32 kernels), on the same random FP32 inputs. Needs a GPU with bf16 tensor cores (sm_80+);
// skips, visibly, without one.
//
// Tolerances, derived. bf16 keeps 8 significand bits: rounding to nearest has relative error at
// most u = 2^-8. Both backends round the operands the same way (round to nearest even; the GPU's
// cast kernels use kernels/common/bf16_bits.h, checked bit for bit against the CPU's rounding in
// bf16_host_test.cpp), and a product of two bf16 values is exact in FP32, so both sum the very
// same products in FP32 and differ only in summation order: a relative difference of about
// 2^-24 * sqrt(K/2) for a K-term sum (parity_check.h, fp32_sum_tolerance: 3.2e-5 with a 4x margin
// at K = 36,864, the first FER layer's weight gradient).
//  - Dense (cublasGemmEx, FP32 output): that difference alone. K <= 4,608 here gives <= 1.1e-5
//    with the margin; tensor cores accumulate in FP32 but not necessarily with IEEE rounding at
//    every add, so the test allows 1e-4. A GPU that ran the GEMM in TF32 or FP32 instead would
//    differ by the operand rounding itself, ~0.8u = 3e-3 relative L2, 30x over.
//  - Convolution: cuDNN's legacy bf16 API writes bf16 y, dx and dw (there is no bf16-in,
//    FP32-out convolution), widened to FP32. So the GPU result is the bf16 rounding of the FP32
//    sum, and it is compared against the CPU's FP32 sum rounded to bf16 the same way. They differ
//    only where the summation-order difference straddles a rounding boundary (half an ulp, 2^-9 to
//    2^-8 relative): a fraction of about 3.2e-5 / 2^-9 ~ 1.6e-2 of the elements at worst, each off
//    by one ulp (<= 2^-7). Relative L2 <= sqrt(1.6e-2) * 2^-7 = 1.0e-3; the test allows 2e-3
//    (u/2). Unrounded results (a convolution run in FP32/TF32) would be off by ~0.8u = 3e-3 from
//    the bf16 sum plus the rounding: they fail.
//  - Bias gradients stay FP32 on the GPU (summed from the FP32 dy): checked against the CPU's FP32
//    op with the FP32 tolerance.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine/cuda/cuda_backend.h"
#include "kernels/common/bf16_bits.h"
#include "kernels/cpu/bf16.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/gpu/parity_check.h"

namespace fer::gputest {
namespace {

using kernels::MathType;
using kernels::cpu::Bf16Impl;
using testing::conv_shape;
using testing::Padding;
using testing::random_floats;

constexpr double kU = 1.0 / 256;              // bf16's unit roundoff, 2^-8
constexpr double kDenseBf16Tol = 1e-4;        // FP32 sums of identical products, any order
constexpr double kRoundedConvBf16Tol = kU / 2;  // bf16-rounded results, see above

// The CPU backend's bf16 ops in their emulated form for the scope (the form with the plainest
// numbers, and available on every CPU).
class EmulatedCpuBf16 {
 public:
  EmulatedCpuBf16() : saved_(kernels::cpu::bf16_impl()) {
    kernels::cpu::set_bf16_impl(Bf16Impl::emulated);
  }
  ~EmulatedCpuBf16() { kernels::cpu::set_bf16_impl(saved_); }

 private:
  Bf16Impl saved_;
};

std::vector<float> rounded_to_bf16(std::vector<float> v) {
  for (float& f : v) f = kernels::float_from_bf16_bits(kernels::bf16_bits_from_float(f));
  return v;
}

// A CUDA backend that can run bf16, or a skip message.
std::unique_ptr<Backend> bf16_gpu(std::string* why_not) {
  auto gpu = make_gpu(false);
  *why_not = gpu->precision_unsupported(Precision::bf16);
  return gpu;
}

// Declares `var`, a CUDA backend that runs bf16, or skips the test saying why not.
#define FER_REQUIRE_BF16_GPU(var)                                         \
  FER_REQUIRE_CUDA_DEVICE();                                              \
  std::string fer_bf16_why_;                                              \
  auto var = bf16_gpu(&fer_bf16_why_);                                    \
  if (!fer_bf16_why_.empty()) GTEST_SKIP() << "no bf16 on this GPU: " << fer_bf16_why_

// ------------------------------------------------------------------------------------------------
// Convolutions.

struct ConvCase {
  const char* name;
  int n, h, w, c, k, kh, kw, sh, sw;
  Padding pad;
};

const ConvCase kConvCases[] = {
    {"odd_nonsquare_same", 2, 7, 9, 3, 4, 3, 3, 1, 1, Padding::same},
    {"stride2_even_same_asym", 2, 8, 8, 4, 5, 3, 3, 2, 2, Padding::same},  // padded copy
    {"even_kernel_same_asym", 2, 6, 6, 3, 4, 2, 2, 1, 1, Padding::same},   // padded copy
    {"valid_16to32", 4, 12, 12, 16, 32, 3, 3, 1, 1, Padding::valid},
    {"pointwise_1x1", 2, 4, 4, 3, 2, 1, 1, 1, 1, Padding::valid},
    {"fer_first_layer", 16, 48, 48, 1, 64, 3, 3, 1, 1, Padding::same},
    {"fer_mid_layer", 8, 24, 24, 64, 128, 3, 3, 1, 1, Padding::same},
    {"fer_5x5_mid", 4, 12, 12, 32, 64, 5, 5, 1, 1, Padding::same},
};

struct ConvRun {
  std::vector<float> y, dx, dw, db;
};

// Forward without bias (the GPU adds the FP32 bias after widening; leaving it out keeps y the
// bare, bf16-rounded sum), backward with every gradient.
ConvRun run_conv(Backend& b, const ConvShape& s, const std::vector<float>& x,
                 const std::vector<float>& w, const std::vector<float>& dy) {
  // Outputs start as junk (copies of inputs): they must be overwritten.
  Buffer<float> x_(b, x), w_(b, w), dy_(b, dy), y_(b, dy), dx_(b, x), dw_(b, w);
  Buffer<float> db_(b, std::vector<float>(size_t(s.k), 7.0f));
  const size_t ws_bytes = b.conv2d_workspace_bytes(s);
  Buffer<unsigned char> ws(b, ws_bytes == 0 ? 1 : ws_bytes);
  b.conv2d_forward(s, x_.get(), w_.get(), nullptr, y_.get(), ws.get());
  b.conv2d_backward(s, x_.get(), w_.get(), dy_.get(), dx_.get(), dw_.get(), db_.get(), ws.get());
  return {y_.download(), dx_.download(), dw_.download(), db_.download()};
}

class Bf16ConvParity : public ::testing::TestWithParam<int> {};

TEST_P(Bf16ConvParity, MatchesTheCpuBf16OpRoundedToBf16) {
  FER_REQUIRE_BF16_GPU(gpu);
  const ConvCase& cc = kConvCases[GetParam()];
  ConvShape s = conv_shape(cc.n, cc.h, cc.w, cc.c, cc.k, cc.kh, cc.kw, cc.sh, cc.sw, cc.pad);
  const ConvShape s32 = s;
  s.math = MathType::bf16;
  const auto x = random_floats(size_t(s.x_size()), 61);
  const auto w = random_floats(size_t(s.w_size()), 62, -0.5f, 0.5f);
  const auto dy = random_floats(size_t(s.y_size()), 63);

  auto cpu = make_cpu_backend();
  ConvRun want, want32;
  {
    EmulatedCpuBf16 emulated;
    want = run_conv(*cpu, s, x, w, dy);
  }
  want32 = run_conv(*cpu, s32, x, w, dy);
  const ConvRun got = run_conv(*gpu, s, x, w, dy);

  const std::string what = std::string(cc.name) + " " + describe(s) + " [" +
                           static_cast<CudaBackend&>(*gpu).conv_algorithms(s) + "]";
  expect_close(got.y, rounded_to_bf16(want.y), kRoundedConvBf16Tol, what + " y");
  expect_close(got.dx, rounded_to_bf16(want.dx), kRoundedConvBf16Tol, what + " dx");
  expect_close(got.dw, rounded_to_bf16(want.dw), kRoundedConvBf16Tol, what + " dw");
  expect_close(got.db, want32.db, fp32_sum_tolerance(int64_t(s.n) * s.oh * s.ow, kFp32Tol),
               what + " db (FP32)");
}

INSTANTIATE_TEST_SUITE_P(Shapes, Bf16ConvParity, ::testing::Range(0, int(std::size(kConvCases))),
                         [](const auto& info) { return std::string(kConvCases[info.param].name); });

// ------------------------------------------------------------------------------------------------
// Dense layers.

const DenseShape kDenseShapes[] = {
    {1, 1, 1}, {3, 7, 5}, {17, 1025, 7}, {64, 128, 7}, {64, 4608, 1024}, {5, 33, 65},
};

class Bf16DenseParity : public ::testing::TestWithParam<int> {};

TEST_P(Bf16DenseParity, MatchesTheCpuBf16OpUpToSummationOrder) {
  FER_REQUIRE_BF16_GPU(gpu);
  DenseShape s = kDenseShapes[GetParam()];
  const DenseShape s32 = s;
  s.math = MathType::bf16;
  const auto x = random_floats(size_t(s.n) * s.in, 71);
  const auto w = random_floats(size_t(s.in) * s.out, 72, -0.2f, 0.2f);
  const auto bias = random_floats(size_t(s.out), 73);
  const auto dy = random_floats(size_t(s.n) * s.out, 74);
  auto cpu = make_cpu_backend();
  auto run = [&](Backend& b, const DenseShape& shape) {
    Buffer<float> x_(b, x), w_(b, w), b_(b, bias), dy_(b, dy);
    Buffer<float> y_(b, dy), dx_(b, x), dw_(b, w), db_(b, bias);  // junk-filled outputs
    b.dense_forward(shape, x_.get(), w_.get(), b_.get(), y_.get());
    b.dense_backward(shape, x_.get(), w_.get(), dy_.get(), dx_.get(), dw_.get(), db_.get());
    return std::vector<std::vector<float>>{y_.download(), dx_.download(), dw_.download(),
                                           db_.download()};
  };
  std::vector<std::vector<float>> want;
  {
    EmulatedCpuBf16 emulated;
    want = run(*cpu, s);
  }
  const auto want32 = run(*cpu, s32);
  const auto got = run(*gpu, s);
  const std::string what = describe(s);
  expect_close(got[0], want[0], kDenseBf16Tol, what + " y");
  expect_close(got[1], want[1], kDenseBf16Tol, what + " dx");
  expect_close(got[2], want[2], kDenseBf16Tol, what + " dw");
  expect_close(got[3], want32[3], kFp32Tol, what + " db (FP32)");
  // The rounding must show: a bf16 GEMM differs from the FP32 one by ~0.8u; FP32 or TF32 math
  // would come within 1e-3 * u of it. (Skipped for 1-term sums of exactly representable data.)
  // kU / 16: where the bias dominates y the bf16 part shrinks (the {3,7,5} shape: 5.5e-4, only 1.1x
  // above kU / 8 by a review's float32 simulation); kU / 16 still sits 60x above FP32's difference.
  if (s.in > 1) {
    EXPECT_GT(rel_l2_error(got[0], want32[0]), kU / 16) << what << ": y shows no bf16 rounding";
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, Bf16DenseParity, ::testing::Range(0, int(std::size(kDenseShapes))),
                         [](const auto& info) {
                           const DenseShape s = kDenseShapes[info.param];
                           return "n" + std::to_string(s.n) + "_in" + std::to_string(s.in) +
                                  "_out" + std::to_string(s.out);
                         });

TEST(Bf16Precision, AcceptedOnSm80AndLaterRefusedBeforeNamingTheFeature) {
  FER_REQUIRE_CUDA_DEVICE();
  auto gpu = make_gpu(true);
  const std::string why = gpu->precision_unsupported(Precision::bf16);
  const std::string desc = gpu->description();
  if (desc.find("sm_7") != std::string::npos || desc.find("sm_6") != std::string::npos) {
    EXPECT_NE(why.find("compute capability 8.0"), std::string::npos) << why;
  } else {
    EXPECT_EQ(why, "") << desc;
  }
}

}  // namespace
}  // namespace fer::gputest
