// Convolution (cuDNN) against the CPU backend: forward, data/filter/bias gradients, over odd shapes
// (batch 1, odd and non-square sizes, 1 input channel, 5x5, stride 2, asymmetric "same" padding
// that needs the padded-copy path), with TF32 off (FP32 tolerance) and on (TF32 tolerance).
#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <vector>

#include "engine/cuda/cuda_backend.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/gpu/parity_check.h"

namespace fer::gputest {
namespace {

using testing::conv_shape;
using testing::Padding;
using testing::random_floats;

struct ConvCase {
  const char* name;
  int n, h, w, c, k, kh, kw, sh, sw;
  Padding pad;
};

const ConvCase kCases[] = {
    {"odd_nonsquare_same", 2, 7, 9, 3, 4, 3, 3, 1, 1, Padding::same},
    {"batch1_gray_48", 1, 48, 48, 1, 8, 3, 3, 1, 1, Padding::same},
    {"k5x5_same", 3, 10, 8, 5, 6, 5, 5, 1, 1, Padding::same},
    {"stride2_even_same_asym", 2, 8, 8, 4, 5, 3, 3, 2, 2, Padding::same},
    {"stride2_odd_same_sym", 2, 9, 7, 3, 4, 3, 3, 2, 2, Padding::same},
    {"even_kernel_same_asym", 2, 6, 6, 3, 4, 2, 2, 1, 1, Padding::same},
    {"mixed_kernel_stride_asym", 2, 11, 10, 3, 4, 4, 2, 1, 2, Padding::same},
    {"stride2_valid_leftover", 2, 10, 11, 3, 4, 3, 3, 2, 2, Padding::valid},
    {"valid_16to32", 4, 12, 12, 16, 32, 3, 3, 1, 1, Padding::valid},
    {"valid_to_1x1", 1, 5, 5, 2, 3, 5, 5, 1, 1, Padding::valid},
    {"pointwise_1x1", 2, 4, 4, 3, 2, 1, 1, 1, 1, Padding::valid},
    {"fer_first_layer", 16, 48, 48, 1, 64, 3, 3, 1, 1, Padding::same},
    {"fer_mid_layer", 8, 24, 24, 64, 128, 3, 3, 1, 1, Padding::same},
    {"fer_5x5_mid", 4, 12, 12, 32, 64, 5, 5, 1, 1, Padding::same},
};

struct ConvResult {
  std::vector<float> y, dx, dw, db;
};

ConvResult run_conv(Backend& b, const ConvShape& s, const std::vector<float>& x,
                    const std::vector<float>& w, const std::vector<float>& bias,
                    const std::vector<float>& dy, bool with_dx) {
  // Outputs start filled with junk (copies of inputs): they must be overwritten, not accumulated.
  Buffer<float> dx_(b, x), dw_(b, w), db_(b, bias), y_(b, dy);
  Buffer<float> x_(b, x), w_(b, w), b_(b, bias), dy_(b, dy);
  const size_t ws_bytes = b.conv2d_workspace_bytes(s);
  Buffer<unsigned char> ws(b, ws_bytes == 0 ? 1 : ws_bytes);
  b.conv2d_forward(s, x_.get(), w_.get(), b_.get(), y_.get(), ws.get());
  b.conv2d_backward(s, x_.get(), w_.get(), dy_.get(), with_dx ? dx_.get() : nullptr, dw_.get(),
                    db_.get(), ws.get());
  ConvResult r;
  r.y = y_.download();
  if (with_dx) r.dx = dx_.download();
  r.dw = dw_.download();
  r.db = db_.download();
  return r;
}

class ConvParity : public ::testing::TestWithParam<std::tuple<int, bool>> {};

TEST_P(ConvParity, ForwardAndBackwardMatchCpu) {
  FER_REQUIRE_CUDA_DEVICE();
  const ConvCase& cc = kCases[std::get<0>(GetParam())];
  const bool tf32 = std::get<1>(GetParam());
  Pair bk(tf32);
  const ConvShape s = conv_shape(cc.n, cc.h, cc.w, cc.c, cc.k, cc.kh, cc.kw, cc.sh, cc.sw, cc.pad);
  const auto x = random_floats(size_t(s.x_size()), 11);
  const auto w = random_floats(size_t(s.w_size()), 12, -0.5f, 0.5f);
  const auto bias = random_floats(size_t(s.k), 13);
  const auto dy = random_floats(size_t(s.y_size()), 14);
  const ConvResult want = run_conv(*bk.cpu, s, x, w, bias, dy, true);
  const ConvResult got = run_conv(*bk.gpu, s, x, w, bias, dy, true);
  const std::string what = std::string(cc.name) + " " + describe(s) + " [" +
                           static_cast<CudaBackend&>(*bk.gpu).conv_algorithms(s) + "]";
  expect_close(got.y, want.y, bk.tol, what + " y");
  expect_close(got.dx, want.dx, bk.tol, what + " dx");
  // dw sums n*oh*ow products per entry (36,864 for fer_first_layer): its FP32 tolerance grows
  // with that length (parity_check.h, fp32_sum_tolerance; checked on the CPU in
  // parity_check_test.cpp).
  expect_close(got.dw, want.dw, fp32_sum_tolerance(int64_t(s.n) * s.oh * s.ow, bk.tol), what + " dw");
  // The bias gradient never uses TF32; it sums as many terms as dw.
  expect_close(got.db, want.db, fp32_sum_tolerance(int64_t(s.n) * s.oh * s.ow, kFp32Tol), what + " db");
}

std::string conv_case_name(const ::testing::TestParamInfo<std::tuple<int, bool>>& info) {
  return std::string(kCases[std::get<0>(info.param)].name) +
         (std::get<1>(info.param) ? "_tf32" : "_fp32");
}

INSTANTIATE_TEST_SUITE_P(Shapes, ConvParity,
                         ::testing::Combine(::testing::Range(0, int(std::size(kCases))),
                                            ::testing::Bool()),
                         conv_case_name);

TEST(ConvParityExtra, NoDxNoBiasFirstLayer) {
  FER_REQUIRE_CUDA_DEVICE();
  Pair bk(false);
  const ConvShape s = conv_shape(2, 8, 8, 1, 4, 3, 3, 2, 2, Padding::same);  // asymmetric
  const auto x = random_floats(size_t(s.x_size()), 21);
  const auto w = random_floats(size_t(s.w_size()), 22);
  const auto dy = random_floats(size_t(s.y_size()), 23);
  std::vector<std::vector<float>> out[2];
  Backend* backends[2] = {bk.cpu.get(), bk.gpu.get()};
  for (int i = 0; i < 2; ++i) {
    Backend& b = *backends[i];
    Buffer<float> x_(b, x), w_(b, w), dy_(b, dy), y_(b, size_t(s.y_size())), dw_(b, w.size());
    const size_t ws_bytes = b.conv2d_workspace_bytes(s);
    Buffer<unsigned char> ws(b, ws_bytes == 0 ? 1 : ws_bytes);
    b.conv2d_forward(s, x_.get(), w_.get(), nullptr, y_.get(), ws.get());
    b.conv2d_backward(s, x_.get(), w_.get(), dy_.get(), nullptr, dw_.get(), nullptr, ws.get());
    out[i] = {y_.download(), dw_.download()};
  }
  expect_close(out[1][0], out[0][0], kFp32Tol, "y without bias");
  expect_close(out[1][1], out[0][1], kFp32Tol, "dw without dx/db");
}

TEST(ConvParityExtra, WorkspaceIsCachedPerShape) {
  FER_REQUIRE_CUDA_DEVICE();
  auto gpu = make_gpu(false);
  const ConvShape a = conv_shape(4, 16, 16, 8, 8, 3, 3, 1, 1, Padding::same);
  const ConvShape b = conv_shape(4, 16, 16, 8, 8, 3, 3, 2, 2, Padding::same);
  const size_t wa = gpu->conv2d_workspace_bytes(a);
  const size_t wb = gpu->conv2d_workspace_bytes(b);
  EXPECT_EQ(gpu->conv2d_workspace_bytes(a), wa);
  EXPECT_EQ(gpu->conv2d_workspace_bytes(b), wb);
  // The asymmetric stride-2 shape needs room for the padded copy of x.
  EXPECT_GE(wb, size_t(b.n) * 17 * 17 * 8 * sizeof(float));
}

TEST(ConvParityExtra, DeterministicModeRepeatsBitwise) {
  FER_REQUIRE_CUDA_DEVICE();
  auto gpu = make_gpu(false, /*deterministic=*/true);
  const ConvShape s = conv_shape(8, 12, 12, 16, 16, 3, 3, 1, 1, Padding::same);
  const auto x = random_floats(size_t(s.x_size()), 31);
  const auto w = random_floats(size_t(s.w_size()), 32);
  const auto bias = random_floats(size_t(s.k), 33);
  const auto dy = random_floats(size_t(s.y_size()), 34);
  const ConvResult r1 = run_conv(*gpu, s, x, w, bias, dy, true);
  const ConvResult r2 = run_conv(*gpu, s, x, w, bias, dy, true);
  EXPECT_EQ(r1.y, r2.y);
  EXPECT_EQ(r1.dx, r2.dx);
  EXPECT_EQ(r1.dw, r2.dw);
  EXPECT_EQ(r1.db, r2.db);
}

// Two backends (as two processes would) in deterministic mode choose the same algorithms, from the
// shape and cuDNN's candidate list alone, and so agree bitwise; measured times never enter.
TEST(ConvParityExtra, DeterministicModeTwoBackendsAgreeBitwise) {
  FER_REQUIRE_CUDA_DEVICE();
  auto a = make_gpu(false, /*deterministic=*/true);
  auto b = make_gpu(false, /*deterministic=*/true);
  for (const ConvCase& cc : kCases) {
    const ConvShape s = conv_shape(cc.n, cc.h, cc.w, cc.c, cc.k, cc.kh, cc.kw, cc.sh, cc.sw, cc.pad);
    const auto x = random_floats(size_t(s.x_size()), 41);
    const auto w = random_floats(size_t(s.w_size()), 42);
    const auto bias = random_floats(size_t(s.k), 43);
    const auto dy = random_floats(size_t(s.y_size()), 44);
    const ConvResult ra = run_conv(*a, s, x, w, bias, dy, true);
    const ConvResult rb = run_conv(*b, s, x, w, bias, dy, true);
    const std::string algos = static_cast<CudaBackend&>(*a).conv_algorithms(s);
    EXPECT_EQ(algos, static_cast<CudaBackend&>(*b).conv_algorithms(s)) << cc.name;
    EXPECT_EQ(ra.y, rb.y) << cc.name << " " << algos;
    EXPECT_EQ(ra.dx, rb.dx) << cc.name << " " << algos;
    EXPECT_EQ(ra.dw, rb.dw) << cc.name << " " << algos;
    EXPECT_EQ(ra.db, rb.db) << cc.name << " " << algos;
  }
}

}  // namespace
}  // namespace fer::gputest
