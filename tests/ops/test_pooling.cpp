// kernels/cpu max/average pooling against the reference (odd sizes with uncovered trailing
// rows/columns, overlapping windows, non-square windows and strides, global average), the
// first-maximum tie rule, and finite differences on tie-free inputs.
// Tolerances: max pooling forward copies values, so it is exact (0 error) on distinct inputs;
// backward and average pooling 1e-6 relative L2 (float sums of at most 36 terms); gradient checks
// 1e-4 (both ops are piecewise linear and the perturbation never crosses a tie).
#include <gtest/gtest.h>

#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include "kernels/cpu/pooling.h"
#include "tests/ops/op_test_util.h"
#include "tests/reference/reference_ops.h"

namespace fer {
namespace {

using kernels::PoolMode;
using kernels::PoolShape;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

struct PoolCase {
  const char* name;
  PoolShape s;
  PoolMode mode;
};
std::ostream& operator<<(std::ostream& os, const PoolCase& c) { return os << c.name; }

std::vector<PoolCase> pool_cases() {
  using testing::pool_shape;
  std::vector<PoolCase> cases;
  for (PoolMode mode : {PoolMode::max, PoolMode::average}) {
    const bool mx = mode == PoolMode::max;
    cases.push_back(
        {mx ? "max_2x2_s2_odd" : "avg_2x2_s2_odd", pool_shape(2, 7, 9, 3, 2, 2, 2, 2), mode});
    cases.push_back({mx ? "max_3x3_s2_overlap" : "avg_3x3_s2_overlap",
                     pool_shape(2, 9, 8, 4, 3, 3, 2, 2), mode});
    cases.push_back({mx ? "max_3x3_s1" : "avg_3x3_s1", pool_shape(1, 6, 7, 5, 3, 3, 1, 1), mode});
    cases.push_back(
        {mx ? "max_3x2_s1x2" : "avg_3x2_s1x2", pool_shape(3, 6, 9, 2, 3, 2, 1, 2), mode});
    cases.push_back({mx ? "max_global" : "avg_global", pool_shape(3, 6, 5, 7, 6, 5, 6, 5), mode});
    cases.push_back({mx ? "max_stride_gt_pool" : "avg_stride_gt_pool",
                     pool_shape(2, 9, 9, 3, 2, 2, 3, 3), mode});
    // Windows disjoint across rows but overlapping across columns (the accumulating path).
    cases.push_back({mx ? "max_2x3_s2x1" : "avg_2x3_s2x1", pool_shape(2, 7, 8, 3, 2, 3, 2, 1), mode});
    // >= 32768 inputs: threaded by output rows, and by images when windows overlap.
    // Disjoint windows with gaps and uncovered bottom/right edges, threaded (written in one pass).
    cases.push_back({mx ? "max_threaded_gaps" : "avg_threaded_gaps",
                     pool_shape(4, 50, 47, 16, 2, 2, 3, 3), mode});
    cases.push_back({mx ? "max_threaded_rows" : "avg_threaded_rows",
                     pool_shape(4, 48, 47, 16, 2, 2, 2, 2), mode});
    cases.push_back({mx ? "max_threaded_overlap" : "avg_threaded_overlap",
                     pool_shape(3, 25, 23, 32, 3, 3, 2, 2), mode});
  }
  return cases;
}

class CpuPool2d : public ::testing::TestWithParam<PoolCase> {};

TEST_P(CpuPool2d, ForwardBackwardMatchReference) {
  const PoolCase& c = GetParam();
  const PoolShape& s = c.s;
  const auto x = testing::distinct_floats(size_t(s.x_size()), 1);
  const auto dy = testing::random_floats(size_t(s.y_size()), 2);
  std::vector<float> y(size_t(s.y_size()), kNaN), dx(size_t(s.x_size()), kNaN);
  kernels::cpu::pool2d_forward(s, c.mode, x.data(), y.data());
  kernels::cpu::pool2d_backward(s, c.mode, x.data(), y.data(), dy.data(), dx.data());

  const auto xd = testing::to_double(x), dyd = testing::to_double(dy);
  std::vector<double> yr(y.size()), dxr(dx.size());
  reference::pool2d_forward(s, c.mode, xd.data(), yr.data());
  reference::pool2d_backward(s, c.mode, xd.data(), yr.data(), dyd.data(), dxr.data());
  // Max pooling copies values (exact); overlapping windows add float gradients (one rounding).
  EXPECT_LE(testing::rel_l2_error(y, yr), c.mode == PoolMode::max ? 0.0 : 1e-6) << "y";
  EXPECT_LE(testing::rel_l2_error(dx, dxr), 1e-6) << "dx";
}

TEST_P(CpuPool2d, GradientMatchesFiniteDifferences) {
  const PoolCase& c = GetParam();
  const PoolShape& s = c.s;
  // Max: values 1/64 apart, perturbed by 1/512, so no window changes its maximum. Average pooling
  // is linear: inputs in [-1, 1] and a large step (1/4) keep the float rounding of y small
  // against the difference.
  auto x = c.mode == PoolMode::max ? testing::distinct_floats(size_t(s.x_size()), 3)
                                   : testing::random_floats(size_t(s.x_size()), 3);
  const auto r = testing::to_double(testing::random_floats(size_t(s.y_size()), 4));
  const auto dy = testing::to_float(r);
  std::vector<float> y(size_t(s.y_size())), dx(size_t(s.x_size()));
  auto loss = [&]() {
    kernels::cpu::pool2d_forward(s, c.mode, x.data(), y.data());
    return testing::dot(y.data(), r.data(), y.size());
  };
  loss();
  kernels::cpu::pool2d_backward(s, c.mode, x.data(), y.data(), dy.data(), dx.data());
  const size_t points = s.x_size() >= 32768 ? 16 : 96;  // threaded cases: fewer points
  const auto g = testing::gradient_check(x.data(), x.size(), dx.data(),
                                         c.mode == PoolMode::max ? 1.0 / 512 : 0.25, loss, points);
  EXPECT_LT(g.rel_error, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Shapes, CpuPool2d, ::testing::ValuesIn(pool_cases()),
                         [](const ::testing::TestParamInfo<PoolCase>& info) {
                           return std::string(info.param.name);
                         });

// Ties: the whole gradient goes to the first maximum in row-major window order, once.
TEST(CpuPool2dMax, TiesRouteToFirstMaximum) {
  const PoolShape s = testing::pool_shape(1, 2, 3, 2, 2, 2, 1, 1);  // two overlapping windows
  // channel 0: all equal; channel 1: maximum 5 at (0,1) and (1,0) and (1,2)
  const std::vector<float> x = {1, 0, 1, 5, 1, 2,  //
                                1, 5, 1, 3, 1, 5};
  std::vector<float> y(size_t(s.y_size())), dx(x.size(), kNaN);
  const std::vector<float> dy = {10, 100, 20, 200};  // (ox=0: c0, c1), (ox=1: c0, c1)
  kernels::cpu::pool2d_forward(s, PoolMode::max, x.data(), y.data());
  kernels::cpu::pool2d_backward(s, PoolMode::max, x.data(), y.data(), dy.data(), dx.data());
  EXPECT_EQ(y, (std::vector<float>{1, 5, 1, 5}));
  // Channel 0: window 0's first max is (0,0); window 1's is (0,1).
  // Channel 1: window 0 (cols 0-1): first 5 at (0,1); window 1 (cols 1-2): first 5 is (0,1) too.
  const std::vector<float> want = {10, 0, 20, 300, 0, 0,  //
                                   0,  0, 0,  0,   0, 0};
  EXPECT_EQ(dx, want);
}

}  // namespace
}  // namespace fer
