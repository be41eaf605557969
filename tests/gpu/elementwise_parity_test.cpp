// Activations, batch normalisation, pooling and dropout on the GPU against the CPU backend.
#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <vector>

#include "engine/cuda/cuda_backend.h"
#include "tests/gpu/gpu_test_util.h"

namespace fer::gputest {
namespace {

using testing::distinct_floats;
using testing::pool_shape;
using testing::random_floats;
using testing::random_floats_away_from_zero;

Backend* side(Pair& bk, int i) { return i == 0 ? bk.cpu.get() : bk.gpu.get(); }

// ------------------------------------------------------------------------------ activations

struct ActCase {
  const char* name;
  Act act;
  int64_t rows;
  int cols;
};

const ActCase kActCases[] = {
    {"relu_odd", Act::relu, 1, 1001},     {"relu_big", Act::relu, 64, 9216},
    {"linear", Act::linear, 3, 37},       {"softmax_7", Act::softmax, 13, 7},
    {"softmax_1row", Act::softmax, 1, 7}, {"softmax_wide", Act::softmax, 3, 100},
    {"softmax_many", Act::softmax, 300, 1}, {"softmax_33", Act::softmax, 70, 33},
};

class ActivationParity : public ::testing::TestWithParam<std::tuple<int, bool>> {};

TEST_P(ActivationParity, ForwardBackward) {
  FER_REQUIRE_CUDA_DEVICE();
  const ActCase& c = kActCases[std::get<0>(GetParam())];
  const bool in_place = std::get<1>(GetParam());
  Pair bk(false);
  const int64_t n = c.rows * c.cols;
  const auto x = random_floats_away_from_zero(size_t(n), 61, 1e-3f, 3.0f);
  const auto dy = random_floats(size_t(n), 62);
  std::vector<float> y[2], dx[2];
  for (int i = 0; i < 2; ++i) {
    Backend& b = *side(bk, i);
    Buffer<float> x_(b, x), y_(b, dy), dy_(b, dy), dx_(b, x);
    float* yp = in_place ? x_.get() : y_.get();
    b.activation_forward(c.act, n, c.cols, x_.get(), yp);
    float* dxp = in_place ? dy_.get() : dx_.get();
    b.activation_backward(c.act, n, c.cols, yp, dy_.get(), dxp);
    y[i] = in_place ? x_.download() : y_.download();
    dx[i] = in_place ? dy_.download() : dx_.download();
  }
  const std::string what = std::string(c.name) + (in_place ? " in-place" : "");
  expect_close(y[1], y[0], kFp32Tol, what + " y");
  expect_close(dx[1], dx[0], kFp32Tol, what + " dx");
}

INSTANTIATE_TEST_SUITE_P(Cases, ActivationParity,
                         ::testing::Combine(::testing::Range(0, int(std::size(kActCases))),
                                            ::testing::Bool()),
                         [](const auto& info) {
                           return std::string(kActCases[std::get<0>(info.param)].name) +
                                  (std::get<1>(info.param) ? "_inplace" : "");
                         });

// ------------------------------------------------------------------------------ batch norm

const BatchNormShape kBnShapes[] = {
    {1, 4}, {2, 3}, {70, 3}, {37, 33}, {1000, 1}, {64 * 12 * 12, 64}, {64, 1024}, {5, 65},
};

class BatchNormParity : public ::testing::TestWithParam<int> {};

TEST_P(BatchNormParity, TrainInferBackward) {
  FER_REQUIRE_CUDA_DEVICE();
  const BatchNormShape s = kBnShapes[GetParam()];
  Pair bk(false);
  const size_t n = size_t(s.rows) * size_t(s.channels), C = size_t(s.channels);
  // An offset and scale per channel so the statistics are not trivially 0 and 1.
  auto x = random_floats(n, 71);
  for (size_t i = 0; i < n; ++i) x[i] = x[i] * (1.0f + float(i % C) * 0.1f) + float(i % C) * 0.3f;
  const auto gamma = random_floats(C, 72, 0.5f, 1.5f);
  const auto beta = random_floats(C, 73);
  const auto mm0 = random_floats(C, 74);
  const auto mv0 = random_floats(C, 75, 0.5f, 2.0f);
  const auto dy = random_floats(n, 76);
  const float momentum = 0.99f, eps = 1e-3f;
  std::vector<float> out[2][9];
  for (int i = 0; i < 2; ++i) {
    Backend& b = *side(bk, i);
    Buffer<float> x_(b, x), g_(b, gamma), be_(b, beta), mm_(b, mm0), mv_(b, mv0), dy_(b, dy);
    Buffer<float> y_(b, x), sm_(b, C), si_(b, C), dx_(b, x), dg_(b, gamma), db_(b, beta), yi_(b, x);
    b.batchnorm_forward_train(s, x_.get(), g_.get(), be_.get(), y_.get(), sm_.get(), si_.get(),
                              mm_.get(), mv_.get(), momentum, eps);
    b.batchnorm_backward(s, x_.get(), g_.get(), dy_.get(), sm_.get(), si_.get(), dx_.get(),
                         dg_.get(), db_.get());
    b.batchnorm_forward_infer(s, x_.get(), g_.get(), be_.get(), mm_.get(), mv_.get(), yi_.get(),
                              eps);
    out[i][0] = y_.download();
    out[i][1] = sm_.download();
    out[i][2] = si_.download();
    out[i][3] = mm_.download();
    out[i][4] = mv_.download();
    out[i][5] = dx_.download();
    out[i][6] = dg_.download();
    out[i][7] = db_.download();
    out[i][8] = yi_.download();
  }
  const char* names[9] = {"y", "save_mean", "save_invstd", "moving_mean", "moving_var",
                          "dx", "dgamma", "dbeta", "y_infer"};
  for (int k = 0; k < 9; ++k) {
    expect_close(out[1][k], out[0][k], kFp32Tol, describe(s) + " " + names[k]);
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, BatchNormParity,
                         ::testing::Range(0, int(std::size(kBnShapes))),
                         [](const auto& info) {
                           const BatchNormShape s = kBnShapes[info.param];
                           return "rows" + std::to_string(s.rows) + "_c" +
                                  std::to_string(s.channels);
                         });

TEST(BatchNormParityExtra, InPlaceForwardAndBackward) {
  FER_REQUIRE_CUDA_DEVICE();
  Pair bk(false);
  const BatchNormShape s{45, 6};
  const size_t n = size_t(s.rows) * s.channels, C = size_t(s.channels);
  const auto x = random_floats(n, 81), dy = random_floats(n, 82);
  const auto gamma = random_floats(C, 83, 0.5f, 1.5f), beta = random_floats(C, 84);
  std::vector<float> y[2], dx[2];
  for (int i = 0; i < 2; ++i) {
    Backend& b = *side(bk, i);
    Buffer<float> x_(b, x), xcopy_(b, x), g_(b, gamma), be_(b, beta), dy_(b, dy);
    Buffer<float> sm_(b, C), si_(b, C), mm_(b, C), mv_(b, C), dg_(b, C), db_(b, C);
    b.fill(mm_.get(), int64_t(C), 0.0f);
    b.fill(mv_.get(), int64_t(C), 1.0f);
    b.batchnorm_forward_train(s, x_.get(), g_.get(), be_.get(), x_.get(), sm_.get(), si_.get(),
                              mm_.get(), mv_.get(), 0.9f, 1e-3f);
    b.batchnorm_backward(s, xcopy_.get(), g_.get(), dy_.get(), sm_.get(), si_.get(), dy_.get(),
                         dg_.get(), db_.get());
    y[i] = x_.download();
    dx[i] = dy_.download();
  }
  expect_close(y[1], y[0], kFp32Tol, "in-place y");
  expect_close(dx[1], dx[0], kFp32Tol, "in-place dx");
}

// ------------------------------------------------------------------------------ pooling

struct PoolCase {
  const char* name;
  PoolShape s;
};

const PoolCase kPoolCases[] = {
    {"p2s2_odd_leftover", pool_shape(2, 7, 9, 3, 2, 2, 2, 2)},
    {"p3s1_overlap", pool_shape(1, 6, 6, 1, 3, 3, 1, 1)},
    {"p3s2_overlap", pool_shape(2, 9, 9, 4, 3, 3, 2, 2)},
    {"global_6x6", pool_shape(3, 6, 6, 5, 6, 6, 1, 1)},
    {"fer_48_p2", pool_shape(8, 48, 48, 64, 2, 2, 2, 2)},
    {"nonsquare_window", pool_shape(2, 8, 10, 3, 2, 3, 2, 3)},
    {"p5s2_single_channel", pool_shape(2, 11, 11, 1, 5, 5, 2, 2)},
};

class PoolParity : public ::testing::TestWithParam<std::tuple<int, int, bool>> {};

TEST_P(PoolParity, ForwardBackward) {
  FER_REQUIRE_CUDA_DEVICE();
  const PoolCase& c = kPoolCases[std::get<0>(GetParam())];
  const PoolMode mode = std::get<1>(GetParam()) == 0 ? PoolMode::max : PoolMode::average;
  const bool ties = std::get<2>(GetParam());
  const PoolShape& s = c.s;
  Pair bk(false);
  std::vector<float> x = distinct_floats(size_t(s.x_size()), 91);
  if (ties) {
    // Only three values: most windows hold several maxima, the first one must get the gradient.
    for (float& v : x) v = float(int((v + 1.0f) * 1000.0f) % 3);
  }
  const auto dy = random_floats(size_t(s.y_size()), 92);
  std::vector<float> y[2], dx[2];
  for (int i = 0; i < 2; ++i) {
    Backend& b = *side(bk, i);
    Buffer<float> x_(b, x), y_(b, dy), dy_(b, dy), dx_(b, x);
    b.pool2d_forward(s, mode, x_.get(), y_.get());
    b.pool2d_backward(s, mode, x_.get(), y_.get(), dy_.get(), dx_.get());
    y[i] = y_.download();
    dx[i] = dx_.download();
  }
  const std::string what = std::string(c.name) + (mode == PoolMode::max ? " max" : " avg");
  if (mode == PoolMode::max) {
    // Max pooling only selects and adds values in the same order: expect exact agreement.
    EXPECT_EQ(y[1], y[0]) << what;
    EXPECT_EQ(dx[1], dx[0]) << what << (ties ? " with ties" : "");
  } else {
    expect_close(y[1], y[0], kFp32Tol, what + " y");
    expect_close(dx[1], dx[0], kFp32Tol, what + " dx");
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, PoolParity,
                         ::testing::Combine(::testing::Range(0, int(std::size(kPoolCases))),
                                            ::testing::Values(0, 1), ::testing::Bool()),
                         [](const auto& info) {
                           return std::string(kPoolCases[std::get<0>(info.param)].name) +
                                  (std::get<1>(info.param) == 0 ? "_max" : "_avg") +
                                  (std::get<2>(info.param) ? "_ties" : "");
                         });

// ------------------------------------------------------------------------------ dropout

class DropoutParity : public ::testing::TestWithParam<std::tuple<int64_t, float>> {};

TEST_P(DropoutParity, MasksAndValuesIdentical) {
  FER_REQUIRE_CUDA_DEVICE();
  const int64_t n = std::get<0>(GetParam());
  const float rate = std::get<1>(GetParam());
  Pair bk(false);
  const auto x = random_floats_away_from_zero(size_t(n), 101, 1e-3f);
  const auto dy = random_floats_away_from_zero(size_t(n), 102, 1e-3f);
  const uint64_t seed = 0x5eed1234abcdULL, stream_id = (uint64_t(7) << 32) | 3u;
  // `first` (a data-parallel rank's place in the stream): aligned, and unaligned to 4 and 64 past
  // 2^34, where the CPU takes an element-wise head and the GPU's first group is partial.
  for (const uint64_t first : {uint64_t(0), (uint64_t(1) << 34) + 4 * 1001 + 3}) {
    SCOPED_TRACE("first " + std::to_string(first));
    std::vector<float> y[2], dx[2];
    for (int i = 0; i < 2; ++i) {
      Backend& b = *side(bk, i);
      Buffer<float> x_(b, x), y_(b, x), dy_(b, dy), dx_(b, dy);
      b.dropout_forward(n, rate, seed, stream_id, first, x_.get(), y_.get());
      b.dropout_backward(n, rate, seed, stream_id, first, dy_.get(), dx_.get());
      y[i] = y_.download();
      dx[i] = dx_.download();
    }
    int64_t kept = 0;
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_EQ(y[1][size_t(i)] == 0.0f, y[0][size_t(i)] == 0.0f) << "forward mask differs at " << i;
      ASSERT_EQ(dx[1][size_t(i)] == 0.0f, dx[0][size_t(i)] == 0.0f) << "backward mask differs at " << i;
      ASSERT_EQ(y[1][size_t(i)] == 0.0f, dx[1][size_t(i)] == 0.0f) << "fwd/bwd masks differ at " << i;
      kept += y[1][size_t(i)] != 0.0f;
    }
    EXPECT_LT(rel_l2_error(y[1], y[0]), 1e-6);
    EXPECT_LT(rel_l2_error(dx[1], dx[0]), 1e-6);
    if (n >= 100000) {
      const double keep_rate = double(kept) / double(n);
      EXPECT_NEAR(keep_rate, 1.0 - rate, 0.01) << "rate " << rate;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, DropoutParity,
                         ::testing::Combine(::testing::Values<int64_t>(1, 3, 4, 5, 1000003),
                                            ::testing::Values(0.0f, 0.25f, 0.5f, 0.999f, 1.0f)),
                         [](const auto& info) {
                           std::string name = "n" + std::to_string(std::get<0>(info.param));
                           name += "_rate" + std::to_string(int(std::get<1>(info.param) * 1000));
                           return name;
                         });

}  // namespace
}  // namespace fer::gputest
