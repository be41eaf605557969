// kernels/cpu activations (relu, linear, softmax) against the reference, in place and out of
// place, plus a finite-difference check of softmax. Tolerances: 1e-6 relative L2 for the
// element-wise/row-wise ops (a handful of float roundings per element), 1e-3 for the float
// gradient check (eps 1e-2 on a smooth function; truncation error O(eps^2) ~ 1e-4).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/cpu/activation.h"
#include "tests/ops/op_test_util.h"
#include "tests/reference/reference_ops.h"

namespace fer {
namespace {

using kernels::Act;

struct ActCase {
  Act act;
  int64_t rows;
  int cols;
};

class CpuActivation : public ::testing::TestWithParam<ActCase> {};

TEST_P(CpuActivation, ForwardBackwardMatchReference) {
  const ActCase c = GetParam();
  const int64_t n = c.rows * c.cols;
  const auto x = testing::random_floats(size_t(n), 1, -3.0f, 3.0f);
  const auto dy = testing::random_floats(size_t(n), 2);
  std::vector<float> y(static_cast<size_t>(n)), dx(static_cast<size_t>(n));
  kernels::cpu::activation_forward(c.act, n, c.cols, x.data(), y.data());
  kernels::cpu::activation_backward(c.act, n, c.cols, y.data(), dy.data(), dx.data());

  const auto xd = testing::to_double(x), dyd = testing::to_double(dy);
  std::vector<double> yr(static_cast<size_t>(n)), dxr(static_cast<size_t>(n));
  reference::activation_forward(c.act, n, c.cols, xd.data(), yr.data());
  // The backward is a function of y; feed the reference the CPU's y so only the backward differs.
  const auto yd = testing::to_double(y);
  reference::activation_backward(c.act, n, c.cols, yd.data(), dyd.data(), dxr.data());
  EXPECT_LT(testing::rel_l2_error(y, yr), 1e-6) << "y";
  EXPECT_LT(testing::rel_l2_error(dx, dxr), 1e-6) << "dx";

  // In place: y aliases x, dx aliases dy; results identical to out of place.
  std::vector<float> inplace = x;
  kernels::cpu::activation_forward(c.act, n, c.cols, inplace.data(), inplace.data());
  EXPECT_EQ(testing::max_abs_diff(inplace.data(), y.data(), y.size()), 0.0);
  std::vector<float> grad = dy;
  kernels::cpu::activation_backward(c.act, n, c.cols, y.data(), grad.data(), grad.data());
  EXPECT_EQ(testing::max_abs_diff(grad.data(), dx.data(), dx.size()), 0.0);
}

INSTANTIATE_TEST_SUITE_P(Cases, CpuActivation,
                         ::testing::Values(ActCase{Act::relu, 37, 13}, ActCase{Act::linear, 5, 7},
                                           ActCase{Act::softmax, 33, 7},
                                           ActCase{Act::softmax, 1, 1},
                                           ActCase{Act::softmax, 600, 7},
                                           // >= 32768 elements: the threaded paths
                                           ActCase{Act::relu, 300, 200},
                                           ActCase{Act::softmax, 5000, 7}));

TEST(CpuActivationSoftmax, RowsSumToOneAndLargeLogitsAreStable) {
  std::vector<float> x = {1000.0f, 999.0f, -1000.0f, 0.0f, 1e-3f, -1e-3f, 88.0f, 89.0f, 90.0f};
  std::vector<float> y(x.size());
  kernels::cpu::activation_forward(Act::softmax, 9, 3, x.data(), y.data());
  for (int r = 0; r < 3; ++r) {
    double sum = 0.0;
    for (int j = 0; j < 3; ++j) {
      ASSERT_TRUE(std::isfinite(y[size_t(r * 3 + j)]));
      sum += y[size_t(r * 3 + j)];
    }
    EXPECT_NEAR(sum, 1.0, 1e-6);
  }
  EXPECT_NEAR(y[0], 1.0 / (1.0 + std::exp(-1.0)), 1e-6);
  EXPECT_EQ(y[2], 0.0f);
}

TEST(CpuActivationSoftmax, GradientMatchesFiniteDifferences) {
  const int rows = 4, cols = 7;
  const int64_t n = rows * cols;
  auto x = testing::random_floats(size_t(n), 3, -2.0f, 2.0f);
  const auto r = testing::to_double(testing::random_floats(size_t(n), 4));
  const auto dy = testing::to_float(r);
  std::vector<float> y(static_cast<size_t>(n)), dx(static_cast<size_t>(n));
  auto loss = [&]() {
    kernels::cpu::activation_forward(Act::softmax, n, cols, x.data(), y.data());
    return testing::dot(y.data(), r.data(), y.size());
  };
  loss();
  kernels::cpu::activation_backward(Act::softmax, n, cols, y.data(), dy.data(), dx.data());
  const auto g = testing::gradient_check(x.data(), x.size(), dx.data(), 1e-2, loss, 64);
  EXPECT_LT(g.rel_error, 1e-3);
  EXPECT_GT(g.numeric_norm, 0.1);
}

TEST(CpuActivationRelu, GradientMatchesFiniteDifferencesAwayFromKink) {
  const int64_t n = 101;
  auto x = testing::random_floats_away_from_zero(size_t(n), 5, 0.05f);
  const auto r = testing::to_double(testing::random_floats(size_t(n), 6));
  const auto dy = testing::to_float(r);
  std::vector<float> y(static_cast<size_t>(n)), dx(static_cast<size_t>(n));
  auto loss = [&]() {
    kernels::cpu::activation_forward(Act::relu, n, 1, x.data(), y.data());
    return testing::dot(y.data(), r.data(), y.size());
  };
  loss();
  kernels::cpu::activation_backward(Act::relu, n, 1, y.data(), dy.data(), dx.data());
  EXPECT_LT(testing::gradient_check(x.data(), x.size(), dx.data(), 1e-2, loss, 101).rel_error,
            1e-4);
}

}  // namespace
}  // namespace fer
