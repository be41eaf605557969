// kernels/cpu fused softmax + cross-entropy: loss, accuracy count and dlogits against the
// reference; accumulation into metrics; stability with huge logits; first-maximum argmax; finite
// differences of the mean loss. Tolerances: loss 1e-6 relative (double internally), dlogits 1e-6
// relative L2; gradient check 1e-3 (eps 1e-2 on a smooth function, float logits).
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "kernels/cpu/softmax_xent.h"
#include "tests/ops/op_test_util.h"
#include "tests/reference/reference_ops.h"

namespace fer {
namespace {

TEST(CpuSoftmaxXent, MatchesReference) {
  for (const int rows : {1, 37, 700, 5000}) {  // 5000 x 7 logits: the threaded path
    const int classes = 7;
    const auto z = testing::random_floats(size_t(rows) * classes, 1, -4.0f, 4.0f);
    const auto labels = testing::random_labels(size_t(rows), classes, 2);
    const float scale = 1.0f / float(rows);
    std::vector<float> d(z.size());
    double metrics[2] = {0.0, 0.0};
    kernels::cpu::softmax_cross_entropy(rows, classes, z.data(), labels.data(), d.data(), scale,
                                        metrics);
    const auto zd = testing::to_double(z);
    std::vector<double> dr(z.size());
    double mr[2] = {0.0, 0.0};
    reference::softmax_cross_entropy(rows, classes, zd.data(), labels.data(), dr.data(), scale, mr);
    EXPECT_NEAR(metrics[0], mr[0], 1e-6 * mr[0]) << rows;
    EXPECT_EQ(metrics[1], mr[1]) << rows;
    EXPECT_LT(testing::rel_l2_error(d, dr), 1e-6) << rows;

    // dlogits may be null; metrics accumulate (they are not overwritten).
    double more[2] = {10.0, 3.0};
    kernels::cpu::softmax_cross_entropy(rows, classes, z.data(), labels.data(), nullptr, scale,
                                        more);
    EXPECT_NEAR(more[0], 10.0 + mr[0], 1e-6 * (10.0 + mr[0]));
    EXPECT_EQ(more[1], 3.0 + mr[1]);
  }
}

TEST(CpuSoftmaxXent, HandComputedAndFirstMaxArgmax) {
  // Row 0: equal logits, label 0: loss log(3); the first maximum (class 0) counts as correct.
  // Row 1: equal logits, label 1: loss log(3); argmax is class 0, so not correct.
  const std::vector<float> z = {0.5f, 0.5f, 0.5f, 2.0f, 2.0f, 2.0f};
  const std::vector<int32_t> labels = {0, 1};
  std::vector<float> d(6);
  double m[2] = {0.0, 0.0};
  kernels::cpu::softmax_cross_entropy(2, 3, z.data(), labels.data(), d.data(), 0.5f, m);
  EXPECT_NEAR(m[0], 2.0 * std::log(3.0), 1e-12);
  EXPECT_EQ(m[1], 1.0);
  const float third = float(1.0 / 3.0);
  EXPECT_NEAR(d[0], (third - 1.0f) * 0.5f, 1e-7);
  EXPECT_NEAR(d[1], third * 0.5f, 1e-7);
  EXPECT_NEAR(d[4], (third - 1.0f) * 0.5f, 1e-7);
  EXPECT_NEAR(d[5], third * 0.5f, 1e-7);
}

TEST(CpuSoftmaxXent, HugeLogitsStayFinite) {
  const std::vector<float> z = {1e4f, -1e4f, 0.0f, 3e38f, 3e38f, -3e38f};
  const std::vector<int32_t> labels = {1, 0};
  std::vector<float> d(6);
  double m[2] = {0.0, 0.0};
  kernels::cpu::softmax_cross_entropy(2, 3, z.data(), labels.data(), d.data(), 1.0f, m);
  EXPECT_NEAR(m[0], 2e4 + std::log(2.0), 1e-6 * 2e4);  // row 0: 2e4; row 1: log 2
  EXPECT_EQ(m[1], 1.0);                                // row 1: first max is class 0 == label
  for (const float v : d) EXPECT_TRUE(std::isfinite(v));
  EXPECT_NEAR(d[0], 1.0, 1e-7);
  EXPECT_NEAR(d[1], -1.0, 1e-7);
  EXPECT_NEAR(d[3], -0.5, 1e-7);
}

TEST(CpuSoftmaxXent, GradientMatchesFiniteDifferences) {
  const int rows = 5, classes = 7;
  auto z = testing::random_floats(size_t(rows) * classes, 3, -2.0f, 2.0f);
  const auto labels = testing::random_labels(size_t(rows), classes, 4);
  const float scale = 1.0f / float(rows);
  std::vector<float> d(z.size());
  double m[2] = {0.0, 0.0};
  kernels::cpu::softmax_cross_entropy(rows, classes, z.data(), labels.data(), d.data(), scale, m);
  auto loss = [&]() {  // the mean loss, whose gradient is dlogits with grad_scale = 1/rows
    double mm[2] = {0.0, 0.0};
    kernels::cpu::softmax_cross_entropy(rows, classes, z.data(), labels.data(), nullptr, scale, mm);
    return mm[0] / rows;
  };
  const auto g = testing::gradient_check(z.data(), z.size(), d.data(), 1e-2, loss, 35);
  EXPECT_LT(g.rel_error, 1e-3);
  EXPECT_GT(g.numeric_norm, 0.01);
}

TEST(CpuSoftmaxXent, LabelOutOfRangeThrows) {
  const std::vector<float> z(6, 0.0f);
  double m[2] = {0.0, 0.0};
  const std::vector<int32_t> bad_hi = {0, 3}, bad_lo = {-1, 0};
  EXPECT_THROW(kernels::cpu::softmax_cross_entropy(2, 3, z.data(), bad_hi.data(), nullptr, 1.0f, m),
               std::out_of_range);
  EXPECT_THROW(kernels::cpu::softmax_cross_entropy(2, 3, z.data(), bad_lo.data(), nullptr, 1.0f, m),
               std::out_of_range);
  EXPECT_EQ(m[0], 0.0);  // nothing accumulated by a rejected call
}

}  // namespace
}  // namespace fer
