// The oracle checks itself: every reference backward equals the central difference of the
// reference forward, in double. Tolerance 1e-6 relative L2 (eps 1e-5: truncation error
// O(eps^2) ~ 1e-10, rounding ~ 1e-16 / 1e-5 = 1e-11; piecewise-linear ops use tie-free inputs).
#include <gtest/gtest.h>

#include <vector>

#include "tests/ops/op_test_util.h"
#include "tests/reference/reference_ops.h"

namespace fer {
namespace {

constexpr double kEps = 1e-5;
constexpr double kTol = 1e-6;

std::vector<double> rand_d(size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  return testing::to_double(testing::random_floats(n, seed, lo, hi));
}

TEST(ReferenceGradients, Conv2d) {
  using testing::Padding;
  for (const auto& s : {testing::conv_shape(2, 5, 4, 3, 2, 3, 3, 2, 2, Padding::same),
                        testing::conv_shape(1, 6, 5, 1, 3, 5, 5, 1, 1, Padding::same),
                        testing::conv_shape(2, 5, 6, 2, 2, 2, 3, 1, 2, Padding::valid)}) {
    auto x = rand_d(size_t(s.x_size()), 1), w = rand_d(size_t(s.w_size()), 2),
         b = rand_d(size_t(s.k), 3);
    const auto r = rand_d(size_t(s.y_size()), 4);
    std::vector<double> y(r.size()), dx(x.size()), dw(w.size()), db(b.size());
    auto loss = [&]() {
      reference::conv2d_forward(s, x.data(), w.data(), b.data(), y.data());
      return testing::dot(y.data(), r.data(), y.size());
    };
    reference::conv2d_backward(s, x.data(), w.data(), r.data(), dx.data(), dw.data(), db.data());
    EXPECT_LT(testing::gradient_check(x.data(), x.size(), dx.data(), kEps, loss, 200).rel_error,
              kTol);
    EXPECT_LT(testing::gradient_check(w.data(), w.size(), dw.data(), kEps, loss, 200).rel_error,
              kTol);
    EXPECT_LT(testing::gradient_check(b.data(), b.size(), db.data(), kEps, loss).rel_error, kTol);
  }
}

TEST(ReferenceGradients, Dense) {
  const kernels::DenseShape s{3, 5, 4};
  auto x = rand_d(15, 1), w = rand_d(20, 2), b = rand_d(4, 3);
  const auto r = rand_d(12, 4);
  std::vector<double> y(12), dx(15), dw(20), db(4);
  auto loss = [&]() {
    reference::dense_forward(s, x.data(), w.data(), b.data(), y.data());
    return testing::dot(y.data(), r.data(), y.size());
  };
  reference::dense_backward(s, x.data(), w.data(), r.data(), dx.data(), dw.data(), db.data());
  EXPECT_LT(testing::gradient_check(x.data(), 15, dx.data(), kEps, loss).rel_error, kTol);
  EXPECT_LT(testing::gradient_check(w.data(), 20, dw.data(), kEps, loss).rel_error, kTol);
  EXPECT_LT(testing::gradient_check(b.data(), 4, db.data(), kEps, loss).rel_error, kTol);
}

TEST(ReferenceGradients, BatchNormTraining) {
  const kernels::BatchNormShape s{9, 4};
  auto x = rand_d(36, 1), gamma = rand_d(4, 2, 0.5f, 1.5f), beta = rand_d(4, 3);
  const auto r = rand_d(36, 4);
  std::vector<double> y(36), mean(4), invstd(4), mm(4, 0.0), mv(4, 1.0);
  auto loss = [&]() {
    reference::batchnorm_forward_train(s, x.data(), gamma.data(), beta.data(), y.data(),
                                       mean.data(), invstd.data(), mm.data(), mv.data(), 0.99,
                                       1e-3);
    return testing::dot(y.data(), r.data(), y.size());
  };
  loss();
  std::vector<double> dx(36), dg(4), db(4);
  reference::batchnorm_backward(s, x.data(), gamma.data(), r.data(), mean.data(), invstd.data(),
                                dx.data(), dg.data(), db.data());
  EXPECT_LT(testing::gradient_check(x.data(), 36, dx.data(), kEps, loss).rel_error, kTol);
  EXPECT_LT(testing::gradient_check(gamma.data(), 4, dg.data(), kEps, loss).rel_error, kTol);
  EXPECT_LT(testing::gradient_check(beta.data(), 4, db.data(), kEps, loss).rel_error, kTol);
}

TEST(ReferenceGradients, Pooling) {
  for (const auto mode : {kernels::PoolMode::max, kernels::PoolMode::average}) {
    const auto s = testing::pool_shape(2, 7, 6, 3, 3, 2, 2, 1);  // overlapping rows, odd size
    auto x = testing::to_double(testing::distinct_floats(size_t(s.x_size()), 1));
    const auto r = rand_d(size_t(s.y_size()), 2);
    std::vector<double> y(r.size()), dx(x.size());
    auto loss = [&]() {
      reference::pool2d_forward(s, mode, x.data(), y.data());
      return testing::dot(y.data(), r.data(), y.size());
    };
    loss();
    reference::pool2d_backward(s, mode, x.data(), y.data(), r.data(), dx.data());
    EXPECT_LT(testing::gradient_check(x.data(), x.size(), dx.data(), kEps, loss, 252).rel_error,
              kTol);
  }
}

TEST(ReferenceGradients, Activations) {
  for (const auto act : {kernels::Act::relu, kernels::Act::softmax, kernels::Act::linear}) {
    const int cols = 7;
    const int64_t n = 3 * cols;
    auto x = testing::to_double(testing::random_floats_away_from_zero(size_t(n), 1, 0.01f, 2.0f));
    const auto r = rand_d(size_t(n), 2);
    std::vector<double> y(static_cast<size_t>(n)), dx(static_cast<size_t>(n));
    auto loss = [&]() {
      reference::activation_forward(act, n, cols, x.data(), y.data());
      return testing::dot(y.data(), r.data(), y.size());
    };
    loss();
    reference::activation_backward(act, n, cols, y.data(), r.data(), dx.data());
    EXPECT_LT(testing::gradient_check(x.data(), x.size(), dx.data(), kEps, loss, 64).rel_error,
              kTol)
        << int(act);
  }
}

TEST(ReferenceGradients, SoftmaxCrossEntropy) {
  const int rows = 4, classes = 7;
  auto z = rand_d(28, 1, -3.0f, 3.0f);
  const auto labels = testing::random_labels(4, classes, 2);
  std::vector<double> d(28);
  double m[2] = {0.0, 0.0};
  reference::softmax_cross_entropy(rows, classes, z.data(), labels.data(), d.data(), 0.25, m);
  auto loss = [&]() {
    double mm[2] = {0.0, 0.0};
    reference::softmax_cross_entropy(rows, classes, z.data(), labels.data(), nullptr, 0.25, mm);
    return mm[0] * 0.25;
  };
  EXPECT_LT(testing::gradient_check(z.data(), z.size(), d.data(), kEps, loss).rel_error, kTol);
}

TEST(ReferenceGradients, Dropout) {
  const int64_t n = 50;
  auto x = rand_d(size_t(n), 1);
  const auto r = rand_d(size_t(n), 2);
  std::vector<double> y(static_cast<size_t>(n)), dx(static_cast<size_t>(n));
  auto loss = [&]() {
    reference::dropout_forward(n, 0.3f, 9, 4, x.data(), y.data());
    return testing::dot(y.data(), r.data(), y.size());
  };
  reference::dropout_backward(n, 0.3f, 9, 4, r.data(), dx.data());
  const auto g = testing::gradient_check(x.data(), x.size(), dx.data(), kEps, loss);
  EXPECT_LT(g.rel_error, kTol);
  EXPECT_GT(g.numeric_norm, 0.0);
}

}  // namespace
}  // namespace fer
