// kernels/cpu batch normalisation against the reference, a hand-computed moving-statistics step
// (TensorFlow's unbiased moving variance) and finite differences of the training-mode forward.
// Tolerances: 1e-5 relative L2 vs the double reference (double statistics, float element-wise
// passes); 2e-3 for the float central differences (eps 1e-2; BN is smooth, truncation O(eps^2)).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/batch_norm.h"
#include "tests/ops/op_test_util.h"
#include "tests/reference/reference_ops.h"

namespace fer {
namespace {

using kernels::BatchNormShape;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

struct BnCase {
  int64_t rows;
  int channels;
  float mean;   // data offset (a large offset tests the two-pass variance)
  float scale;  // data spread
};

class CpuBatchNorm : public ::testing::TestWithParam<BnCase> {};

TEST_P(CpuBatchNorm, TrainInferBackwardMatchReference) {
  const BnCase c = GetParam();
  const BatchNormShape s{c.rows, c.channels};
  const size_t n = size_t(c.rows) * size_t(c.channels), C = size_t(c.channels);
  auto x = testing::random_floats(n, 1, c.mean - c.scale, c.mean + c.scale);
  const auto gamma = testing::random_floats(C, 2, 0.5f, 1.5f);
  const auto beta = testing::random_floats(C, 3);
  const auto dy = testing::random_floats(n, 4);
  auto mm = testing::random_floats(C, 5);
  auto mv = testing::random_floats(C, 6, 0.5f, 2.0f);
  const float momentum = 0.99f, eps = 1e-3f;

  std::vector<float> y(n, kNaN), save_mean(C, kNaN), save_invstd(C, kNaN);
  std::vector<float> mm_cpu = mm, mv_cpu = mv;
  kernels::cpu::batchnorm_forward_train(s, x.data(), gamma.data(), beta.data(), y.data(),
                                        save_mean.data(), save_invstd.data(), mm_cpu.data(),
                                        mv_cpu.data(), momentum, eps);

  const auto xd = testing::to_double(x), gd = testing::to_double(gamma),
             bd = testing::to_double(beta), dyd = testing::to_double(dy);
  std::vector<double> yr(n), mean_r(C), invstd_r(C);
  auto mm_r = testing::to_double(mm), mv_r = testing::to_double(mv);
  reference::batchnorm_forward_train(s, xd.data(), gd.data(), bd.data(), yr.data(), mean_r.data(),
                                     invstd_r.data(), mm_r.data(), mv_r.data(), momentum, eps);
  EXPECT_LT(testing::rel_l2_error(y, yr), 1e-5) << "y";
  EXPECT_LT(testing::rel_l2_error(save_mean, mean_r), 1e-6) << "save_mean";
  EXPECT_LT(testing::rel_l2_error(save_invstd, invstd_r), 1e-6) << "save_invstd";
  EXPECT_LT(testing::rel_l2_error(mm_cpu, mm_r), 1e-6) << "moving_mean";
  EXPECT_LT(testing::rel_l2_error(mv_cpu, mv_r), 1e-6) << "moving_var";

  // Inference with the (updated) moving statistics.
  std::vector<float> yi(n, kNaN);
  kernels::cpu::batchnorm_forward_infer(s, x.data(), gamma.data(), beta.data(), mm_cpu.data(),
                                        mv_cpu.data(), yi.data(), eps);
  std::vector<double> yir(n);
  const auto mmd = testing::to_double(mm_cpu), mvd = testing::to_double(mv_cpu);
  reference::batchnorm_forward_infer(s, xd.data(), gd.data(), bd.data(), mmd.data(), mvd.data(),
                                     yir.data(), eps);
  EXPECT_LT(testing::rel_l2_error(yi, yir), 1e-5) << "inference y";

  // Backward from the CPU's saved statistics (the reference is given the same ones).
  std::vector<float> dx(n, kNaN), dgamma(C, kNaN), dbeta(C, kNaN);
  kernels::cpu::batchnorm_backward(s, x.data(), gamma.data(), dy.data(), save_mean.data(),
                                   save_invstd.data(), dx.data(), dgamma.data(), dbeta.data());
  std::vector<double> dxr(n), dgr(C), dbr(C);
  const auto smd = testing::to_double(save_mean), sid = testing::to_double(save_invstd);
  reference::batchnorm_backward(s, xd.data(), gd.data(), dyd.data(), smd.data(), sid.data(),
                                dxr.data(), dgr.data(), dbr.data());
  EXPECT_LT(testing::rel_l2_error(dx, dxr), 1e-5) << "dx";
  EXPECT_LT(testing::rel_l2_error(dgamma, dgr), 1e-5) << "dgamma";
  EXPECT_LT(testing::rel_l2_error(dbeta, dbr), 1e-5) << "dbeta";
}

INSTANTIATE_TEST_SUITE_P(Shapes, CpuBatchNorm,
                         ::testing::Values(BnCase{30, 5, 0.0f, 1.0f},     // conv: n*h*w = 2*5*3
                                           BnCase{7, 33, 0.0f, 2.0f},     // dense, odd batch
                                           BnCase{2, 3, 0.0f, 1.0f},      // smallest batch
                                           BnCase{4608, 64, 0.5f, 1.0f},  // parallel row blocks
                                           BnCase{500, 8, 5.0f, 0.1f},    // offset data
                                           // Channel counts around the 16-wide register tiles of
                                           // narrow maps (<= 64) and the row loop beyond them.
                                           BnCase{333, 48, 0.0f, 1.0f},
                                           BnCase{9001, 20, 3.0f, 0.5f},
                                           BnCase{300, 128, 0.0f, 1.0f}));

// Keras/TF: moving_mean = m*mm + (1-m)*mean; moving_var = m*mv + (1-m)*var*rows/(rows-1).
TEST(CpuBatchNormMoving, HandComputedStep) {
  const BatchNormShape s{4, 1};
  const std::vector<float> x = {1.0f, 2.0f, 3.0f, 4.0f};  // mean 2.5, biased var 1.25, unbiased 5/3
  const float gamma = 2.0f, beta = 0.5f;
  float mean = 0.0f, invstd = 0.0f, mm = 1.0f, mv = 1.0f;
  std::vector<float> y(4);
  kernels::cpu::batchnorm_forward_train(s, x.data(), &gamma, &beta, y.data(), &mean, &invstd, &mm,
                                        &mv, 0.99f, 1e-3f);
  EXPECT_FLOAT_EQ(mean, 2.5f);
  EXPECT_NEAR(invstd, 1.0 / std::sqrt(1.25 + 1e-3), 1e-7);
  EXPECT_NEAR(mm, 0.99 * 1.0 + 0.01 * 2.5, 1e-7);
  EXPECT_NEAR(mv, 0.99 * 1.0 + 0.01 * (5.0 / 3.0), 1e-7);
  EXPECT_NEAR(y[0], 2.0 * (1.0 - 2.5) / std::sqrt(1.25 + 1e-3) + 0.5, 1e-6);
}

TEST(CpuBatchNorm, GradientsMatchFiniteDifferences) {
  const BatchNormShape s{24, 3};
  const size_t n = 72, C = 3;
  auto x = testing::random_floats(n, 11, -1.0f, 1.0f);
  auto gamma = testing::random_floats(C, 12, 0.5f, 1.5f);
  auto beta = testing::random_floats(C, 13);
  const auto r = testing::to_double(testing::random_floats(n, 14));
  const auto dy = testing::to_float(r);
  std::vector<float> y(n), mean(C), invstd(C), mm(C, 0.0f), mv(C, 1.0f);
  auto loss = [&]() {
    kernels::cpu::batchnorm_forward_train(s, x.data(), gamma.data(), beta.data(), y.data(),
                                          mean.data(), invstd.data(), mm.data(), mv.data(), 0.99f,
                                          1e-3f);
    return testing::dot(y.data(), r.data(), n);
  };
  loss();  // saved statistics of the unperturbed input
  std::vector<float> dx(n), dgamma(C), dbeta(C);
  kernels::cpu::batchnorm_backward(s, x.data(), gamma.data(), dy.data(), mean.data(), invstd.data(),
                                   dx.data(), dgamma.data(), dbeta.data());
  const double eps = 1e-2;
  const auto gx = testing::gradient_check(x.data(), n, dx.data(), eps, loss, 72);
  const auto gg = testing::gradient_check(gamma.data(), C, dgamma.data(), eps, loss);
  const auto gb = testing::gradient_check(beta.data(), C, dbeta.data(), eps, loss);
  EXPECT_LT(gx.rel_error, 2e-3) << "dx";
  EXPECT_LT(gg.rel_error, 2e-3) << "dgamma";
  EXPECT_LT(gb.rel_error, 2e-3) << "dbeta";
  EXPECT_GT(gx.numeric_norm, 0.1);
}

}  // namespace
}  // namespace fer
