// kernels/cpu Adam and SGD: two hand-computed steps (values from exact arithmetic of the Keras/TF
// formulas on the float32 hyper-parameters), and agreement with the double reference on random
// buffers. Tolerance: 2e-6 absolute on parameters of magnitude ~1-2 (a few float ulps), 1e-6
// relative on m and v (float rounding of the update terms); the second Adam element has |g| ~ 1e-3,
// where epsilon's placement (outside the sqrt) changes the step by 0.3%, i.e. ~3e-5, far above the
// tolerance.
#include <gtest/gtest.h>

#include <vector>

#include "kernels/cpu/optimizers.h"
#include "tests/ops/op_test_util.h"
#include "tests/reference/reference_ops.h"

namespace fer {
namespace {

TEST(CpuAdam, TwoHandComputedSteps) {
  std::vector<float> p = {1.0f, -2.0f}, m = {0.0f, 0.0f}, v = {0.0f, 0.0f};
  kernels::AdamParams ap;
  ap.lr = 0.01f;  // beta1 0.9, beta2 0.999, epsilon 1e-7 (Keras defaults)
  ap.step = 1;
  const std::vector<float> g1 = {0.5f, -1e-3f}, g2 = {-0.25f, 2e-3f};
  // Expected values: exact arithmetic on the float32 constants (0.9f = 0.89999997615814...).
  kernels::cpu::adam_update(2, p.data(), g1.data(), m.data(), v.data(), ap);
  EXPECT_NEAR(kernels::cpu::adam_step_size(ap), 3.162256478945e-03, 1e-9);
  EXPECT_NEAR(p[0], 9.900000634691e-01, 2e-6);
  EXPECT_NEAR(p[1], -1.990031523516e+00, 2e-6);
  EXPECT_NEAR(m[0], 5.000001192093e-02, 1e-9);
  EXPECT_NEAR(v[0], 2.499967813492e-04, 1e-10);
  EXPECT_NEAR(m[1], -1.000000285916e-04, 1e-10);
  EXPECT_NEAR(v[1], 9.999872203904e-10, 1e-15);
  ap.step = 2;
  kernels::cpu::adam_update(2, p.data(), g2.data(), m.data(), v.data(), ap);
  EXPECT_NEAR(kernels::cpu::adam_step_size(ap), 2.353151528652e-03, 1e-9);
  EXPECT_NEAR(p[0], 9.873367083348e-01, 2e-6);
  EXPECT_NEAR(p[1], -1.993687388113e+00, 2e-6);
  EXPECT_NEAR(m[0], 2.000000357628e-02, 1e-9);
  EXPECT_NEAR(v[0], 3.122459831237e-04, 1e-10);
  EXPECT_NEAR(m[1], 1.100000338350e-04, 1e-10);
  EXPECT_NEAR(v[1], 4.998936127606e-09, 1e-14);
}

TEST(CpuAdam, MatchesReference) {
  const int64_t n = 100003;  // threaded
  auto p = testing::random_floats(size_t(n), 1);
  const auto g = testing::random_floats(size_t(n), 2, -0.1f, 0.1f);
  auto m = testing::random_floats(size_t(n), 3, -0.01f, 0.01f);
  auto v = testing::random_floats(size_t(n), 4, 0.0f, 1e-4f);
  auto pd = testing::to_double(p), md = testing::to_double(m), vd = testing::to_double(v);
  const auto gd = testing::to_double(g);
  kernels::AdamParams ap;
  ap.step = 17;
  kernels::cpu::adam_update(n, p.data(), g.data(), m.data(), v.data(), ap);
  reference::adam_update(n, pd.data(), gd.data(), md.data(), vd.data(), ap);
  EXPECT_LT(testing::rel_l2_error(p, pd), 1e-6);
  EXPECT_LT(testing::rel_l2_error(m, md), 1e-6);
  EXPECT_LT(testing::rel_l2_error(v, vd), 1e-6);
}

TEST(CpuSgd, HandComputedSteps) {
  const std::vector<float> g1 = {0.5f}, g2 = {-0.25f};
  kernels::SgdParams sp;
  sp.lr = 0.1f;
  {  // plain: p -= lr g (velocity unused, may be null)
    std::vector<float> p = {1.0f};
    kernels::cpu::sgd_update(1, p.data(), g1.data(), nullptr, sp);
    EXPECT_NEAR(p[0], 0.95, 1e-7);
  }
  sp.momentum = 0.9f;
  {  // momentum: v = 0.9 v - 0.1 g; p += v
    std::vector<float> p = {1.0f}, vel = {0.0f};
    kernels::cpu::sgd_update(1, p.data(), g1.data(), vel.data(), sp);
    EXPECT_NEAR(vel[0], -0.05, 1e-7);
    EXPECT_NEAR(p[0], 0.95, 1e-7);
    kernels::cpu::sgd_update(1, p.data(), g2.data(), vel.data(), sp);
    EXPECT_NEAR(vel[0], -0.02, 1e-7);
    EXPECT_NEAR(p[0], 0.93, 1e-7);
  }
  sp.nesterov = true;
  {  // nesterov: p += 0.9 v_new - 0.1 g
    std::vector<float> p = {1.0f}, vel = {0.0f};
    kernels::cpu::sgd_update(1, p.data(), g1.data(), vel.data(), sp);
    EXPECT_NEAR(p[0], 0.905, 1e-7);
    kernels::cpu::sgd_update(1, p.data(), g2.data(), vel.data(), sp);
    EXPECT_NEAR(vel[0], -0.02, 1e-7);
    EXPECT_NEAR(p[0], 0.912, 1e-7);
  }
}

TEST(CpuSgd, MatchesReference) {
  const int64_t n = 40009;  // threaded
  for (const bool nesterov : {false, true}) {
    auto p = testing::random_floats(size_t(n), 5);
    const auto g = testing::random_floats(size_t(n), 6);
    auto vel = testing::random_floats(size_t(n), 7, -0.1f, 0.1f);
    auto pd = testing::to_double(p), veld = testing::to_double(vel);
    const auto gd = testing::to_double(g);
    kernels::SgdParams sp;
    sp.lr = 0.05f;
    sp.momentum = 0.8f;
    sp.nesterov = nesterov;
    kernels::cpu::sgd_update(n, p.data(), g.data(), vel.data(), sp);
    reference::sgd_update(n, pd.data(), gd.data(), veld.data(), sp);
    EXPECT_LT(testing::rel_l2_error(p, pd), 1e-6) << nesterov;
    EXPECT_LT(testing::rel_l2_error(vel, veld), 1e-6) << nesterov;
  }
}

}  // namespace
}  // namespace fer
