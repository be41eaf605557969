// kernels/cpu dense against the double reference and finite differences.
// Tolerances: relative L2 < 1e-5 against the reference (float GEMM, K <= 600); gradient checks
// < 1e-3 (linear op: the central difference is exact up to float rounding of y).
#include <gtest/gtest.h>

#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include "kernels/cpu/dense.h"
#include "tests/ops/op_test_util.h"
#include "tests/reference/reference_ops.h"

namespace fer {
namespace {

using kernels::DenseShape;

struct DenseCase {
  const char* name;
  DenseShape s;
  bool bias = true;
};
std::ostream& operator<<(std::ostream& os, const DenseCase& c) { return os << c.name; }

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

class CpuDense : public ::testing::TestWithParam<DenseCase> {};

TEST_P(CpuDense, ForwardAndBackwardMatchReference) {
  const DenseCase& c = GetParam();
  const DenseShape& s = c.s;
  const auto x = testing::random_floats(size_t(s.n) * s.in, 1);
  const auto w = testing::random_floats(size_t(s.in) * s.out, 2, -0.3f, 0.3f);
  const auto b = testing::random_floats(size_t(s.out), 3);
  const auto dy = testing::random_floats(size_t(s.n) * s.out, 4);
  const float* bias = c.bias ? b.data() : nullptr;

  std::vector<float> y(size_t(s.n) * s.out, kNaN);
  kernels::cpu::dense_forward(s, x.data(), w.data(), bias, y.data());
  std::vector<float> dx(x.size(), kNaN), dw(w.size(), kNaN), db(b.size(), kNaN);
  kernels::cpu::dense_backward(s, x.data(), w.data(), dy.data(), dx.data(), dw.data(),
                               c.bias ? db.data() : nullptr);

  const auto xd = testing::to_double(x), wd = testing::to_double(w), bd = testing::to_double(b),
             dyd = testing::to_double(dy);
  std::vector<double> yr(y.size()), dxr(dx.size()), dwr(dw.size()), dbr(db.size());
  reference::dense_forward(s, xd.data(), wd.data(), c.bias ? bd.data() : nullptr, yr.data());
  reference::dense_backward(s, xd.data(), wd.data(), dyd.data(), dxr.data(), dwr.data(),
                            dbr.data());
  EXPECT_LT(testing::rel_l2_error(y, yr), 1e-5) << "y";
  EXPECT_LT(testing::rel_l2_error(dx, dxr), 1e-5) << "dx";
  EXPECT_LT(testing::rel_l2_error(dw, dwr), 1e-5) << "dw";
  if (c.bias) {
    EXPECT_LT(testing::rel_l2_error(db, dbr), 1e-5) << "db";
  }

  // dx may be null; dw/db unchanged by that.
  std::vector<float> dw2(dw.size(), kNaN), db2(db.size(), kNaN);
  kernels::cpu::dense_backward(s, x.data(), w.data(), dy.data(), nullptr, dw2.data(),
                               c.bias ? db2.data() : nullptr);
  EXPECT_EQ(testing::max_abs_diff(dw.data(), dw2.data(), dw.size()), 0.0);
}

TEST_P(CpuDense, GradientsMatchFiniteDifferences) {
  const DenseCase& c = GetParam();
  const DenseShape& s = c.s;
  auto x = testing::random_floats(size_t(s.n) * s.in, 5);
  auto w = testing::random_floats(size_t(s.in) * s.out, 6, -0.3f, 0.3f);
  auto b = testing::random_floats(size_t(s.out), 7);
  const auto r = testing::to_double(testing::random_floats(size_t(s.n) * s.out, 8));
  const auto dy = testing::to_float(r);
  float* bias = c.bias ? b.data() : nullptr;
  std::vector<float> y(r.size());
  auto loss = [&]() {
    kernels::cpu::dense_forward(s, x.data(), w.data(), bias, y.data());
    return testing::dot(y.data(), r.data(), y.size());
  };
  std::vector<float> dx(x.size()), dw(w.size()), db(b.size());
  kernels::cpu::dense_backward(s, x.data(), w.data(), dy.data(), dx.data(), dw.data(),
                               bias ? db.data() : nullptr);
  const double eps = 0.05;
  const size_t points = s.flops() >= 2000000 ? 8 : 48;  // threaded cases: a few points
  EXPECT_LT(testing::gradient_check(x.data(), x.size(), dx.data(), eps, loss, points).rel_error,
            1e-3);
  EXPECT_LT(testing::gradient_check(w.data(), w.size(), dw.data(), eps, loss, points).rel_error,
            1e-3);
  if (bias) {
    EXPECT_LT(testing::gradient_check(b.data(), b.size(), db.data(), eps, loss, points).rel_error,
              1e-3);
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, CpuDense,
                         ::testing::Values(DenseCase{"batch1", {1, 7, 3}},
                                           DenseCase{"odd", {5, 33, 17}},
                                           DenseCase{"classifier_head", {16, 300, 7}},
                                           DenseCase{"no_bias", {4, 9, 5}, false},
                                           // Big enough for threaded GEMMs, split by columns
                                           // (forward), rows (dw, x transposed), columns (dx)...
                                           DenseCase{"threaded_wide", {64, 300, 130}},
                                           // ...and rows (forward, dx with w transposed), columns
                                           // (dw with x transposed).
                                           DenseCase{"threaded_tall", {600, 60, 64}},
                                           // >= 5e7 multiply-adds: forward and dw on oneDNN's
                                           // SGEMM in builds with it (kernels/cpu/gemm.cpp).
                                           DenseCase{"large_onednn_sgemm", {97, 801, 650}}),
                         [](const ::testing::TestParamInfo<DenseCase>& info) {
                           return std::string(info.param.name);
                         });

}  // namespace
}  // namespace fer
