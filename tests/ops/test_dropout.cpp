// kernels/cpu inverted dropout: the mask is exactly kernels::dropout_keep (so CPU and GPU agree
// bit for bit), deterministic in (seed, stream_id), drops the requested fraction, preserves the
// expectation, and backward applies the same mask and scale as forward.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/common/philox.h"
#include "kernels/cpu/dropout.h"
#include "tests/ops/op_test_util.h"
#include "tests/reference/reference_ops.h"

namespace fer {
namespace {

// Every element of odd-length buffers (not a multiple of the 4- or 64-wide Philox blocks) follows
// dropout_keep exactly at its place first + i in the stream, and kept values are x * (1 / (1 -
// rate)) in float. `first` unaligned to 4 and 64 (a data-parallel rank's rows) and past 2^34
// (a counter above 32 bits) takes the element-wise head and the block paths together.
TEST(CpuDropout, MaskIsExactlyDropoutKeep) {
  for (const uint64_t first : {uint64_t(0), uint64_t(1), uint64_t(37), uint64_t(64), uint64_t(4097),
                               (uint64_t(1) << 34) + 29}) {
    for (const int64_t n : {1, 3, 4, 5, 17, 63, 64, 65, 1001, 70001}) {  // 70001: threaded
      // Rates whose rate * 2^24 is and is not an integer, and rates near 0 and 1 (the vectorised
      // path compares the raw Philox words against an integer threshold).
      for (const float rate : {0.25f, 0.5f, 0.3f, 0.1f, 1e-7f, 0.999f, 0.99999994f, 1.0f}) {
        const uint64_t seed = 0x1234abcdULL, stream = 7;
        const auto x = testing::random_floats(size_t(n), 1, 0.5f, 1.5f);  // never zero
        std::vector<float> y(static_cast<size_t>(n));
        kernels::cpu::dropout_forward(n, rate, seed, stream, first, x.data(), y.data());
        const float scale = 1.0f / (1.0f - rate);
        for (int64_t i = 0; i < n; ++i) {
          const bool keep = kernels::dropout_keep(seed, stream, first + uint64_t(i), rate);
          ASSERT_EQ(y[size_t(i)], keep ? x[size_t(i)] * scale : 0.0f)
              << "first=" << first << " n=" << n << " rate=" << rate << " i=" << i;
        }
      }
    }
  }
}

// Data parallelism: rows [r0, r0 + b) of a batch of rows of F elements, dropped out alone at
// first = r0 * F (a rank's slice of the global batch), get exactly the bits the whole batch's call
// gives them, forward and backward; F = 9 * 9 * 7 is odd, so most slices start unaligned.
TEST(CpuDropout, RowSliceAtItsPlaceEqualsTheWholeBatch) {
  const int64_t rows = 12, features = 9 * 9 * 7, n = rows * features;
  const uint64_t seed = 77, stream = 4096 * 3 + 5;
  const auto x = testing::random_floats(size_t(n), 8);
  std::vector<float> whole(static_cast<size_t>(n)), whole_back(static_cast<size_t>(n));
  kernels::cpu::dropout_forward(n, 0.25f, seed, stream, 0, x.data(), whole.data());
  kernels::cpu::dropout_backward(n, 0.25f, seed, stream, 0, x.data(), whole_back.data());
  for (const int64_t b : {1, 3, 4, 6}) {
    for (int64_t r0 = 0; r0 < rows; r0 += b) {
      const int64_t m = b * features;
      std::vector<float> part(static_cast<size_t>(m)), part_back(static_cast<size_t>(m));
      const float* xs = x.data() + r0 * features;
      kernels::cpu::dropout_forward(m, 0.25f, seed, stream, uint64_t(r0 * features), xs, part.data());
      kernels::cpu::dropout_backward(m, 0.25f, seed, stream, uint64_t(r0 * features), xs, part_back.data());
      ASSERT_TRUE(std::equal(part.begin(), part.end(), whole.begin() + r0 * features)) << "rows " << r0 << "+" << b;
      ASSERT_TRUE(std::equal(part_back.begin(), part_back.end(), whole_back.begin() + r0 * features))
          << "rows " << r0 << "+" << b << " (backward)";
    }
  }
}

TEST(CpuDropout, MatchesReference) {
  const int64_t n = 4099;
  const float rate = 0.3f;
  const auto x = testing::random_floats(size_t(n), 2);
  std::vector<float> y(static_cast<size_t>(n));
  kernels::cpu::dropout_forward(n, rate, 99, 3, 0, x.data(), y.data());
  const auto xd = testing::to_double(x);
  std::vector<double> yr(static_cast<size_t>(n));
  reference::dropout_forward(n, rate, 99, 3, xd.data(), yr.data());
  EXPECT_LT(testing::rel_l2_error(y, yr), 1e-6);  // float vs double 1/(1-rate) scaling
}

TEST(CpuDropout, DeterministicAndStreamsDiffer) {
  const int64_t n = 10000;
  const std::vector<float> x(size_t(n), 1.0f);
  std::vector<float> a(static_cast<size_t>(n)), b(static_cast<size_t>(n)),
      c(static_cast<size_t>(n)), d(static_cast<size_t>(n));
  kernels::cpu::dropout_forward(n, 0.5f, 42, 1, 0, x.data(), a.data());
  kernels::cpu::dropout_forward(n, 0.5f, 42, 1, 0, x.data(), b.data());
  kernels::cpu::dropout_forward(n, 0.5f, 42, 2, 0, x.data(), c.data());  // another stream
  kernels::cpu::dropout_forward(n, 0.5f, 43, 1, 0, x.data(), d.data());  // another seed
  EXPECT_EQ(a, b);
  int64_t same_c = 0, same_d = 0;
  for (int64_t i = 0; i < n; ++i) {
    same_c += a[size_t(i)] == c[size_t(i)];
    same_d += a[size_t(i)] == d[size_t(i)];
  }
  // Independent masks agree on about half the elements (5 sigma = 250).
  EXPECT_NEAR(double(same_c), n / 2.0, 250.0);
  EXPECT_NEAR(double(same_d), n / 2.0, 250.0);
}

// The dropped fraction is the rate, and E[y] = x (inverted scaling), within 5 standard deviations.
TEST(CpuDropout, FractionDroppedAndExpectationPreserved) {
  const int64_t n = 1 << 20;
  const std::vector<float> x(size_t(n), 1.0f);
  std::vector<float> y(static_cast<size_t>(n));
  for (const float rate : {0.1f, 0.25f, 0.5f}) {
    kernels::cpu::dropout_forward(n, rate, 2024, 5, 0, x.data(), y.data());
    int64_t dropped = 0;
    double sum = 0.0;
    for (const float v : y) {
      dropped += v == 0.0f;
      sum += v;
    }
    const double p = rate, sd_frac = std::sqrt(p * (1 - p) / double(n));
    EXPECT_NEAR(double(dropped) / double(n), p, 5 * sd_frac) << "rate " << rate;
    // y_i = keep_i / (1 - p): mean 1, sd sqrt(p / (1 - p)) / sqrt(n)
    EXPECT_NEAR(sum / double(n), 1.0, 5 * std::sqrt(p / (1 - p) / double(n))) << "rate " << rate;
  }
}

// Backward recomputes the mask: dx = mask * dy / (1 - rate), i.e. the same linear map as forward,
// and the gradient of sum(y * r) w.r.t. x is exactly that (the op is linear, so the central
// difference is exact up to rounding). In-place use gives the same bits.
TEST(CpuDropout, BackwardConsistentWithForward) {
  const int64_t n = 777;
  const float rate = 0.4f;
  const uint64_t seed = 5, stream = 11;
  auto x = testing::random_floats(size_t(n), 3);
  const auto r = testing::to_double(testing::random_floats(size_t(n), 4));
  const auto dy = testing::to_float(r);
  std::vector<float> y(static_cast<size_t>(n)), dx(static_cast<size_t>(n)),
      fwd_of_dy(static_cast<size_t>(n));
  kernels::cpu::dropout_backward(n, rate, seed, stream, 0, dy.data(), dx.data());
  kernels::cpu::dropout_forward(n, rate, seed, stream, 0, dy.data(), fwd_of_dy.data());
  EXPECT_EQ(dx, fwd_of_dy);
  kernels::cpu::dropout_forward(n, rate, seed, stream, 0, x.data(), y.data());
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(y[size_t(i)] == 0.0f, dx[size_t(i)] == 0.0f) << i;  // same elements dropped
  }
  auto loss = [&]() {
    kernels::cpu::dropout_forward(n, rate, seed, stream, 0, x.data(), y.data());
    return testing::dot(y.data(), r.data(), y.size());
  };
  EXPECT_LT(testing::gradient_check(x.data(), x.size(), dx.data(), 0.05, loss, 64).rel_error, 1e-4);

  std::vector<float> inplace = dy;
  kernels::cpu::dropout_backward(n, rate, seed, stream, 0, inplace.data(), inplace.data());
  EXPECT_EQ(inplace, dx);
}

TEST(CpuDropout, RateZeroIsIdentity) {
  const auto x = testing::random_floats(101, 6);
  std::vector<float> y(x.size());
  kernels::cpu::dropout_forward(int64_t(x.size()), 0.0f, 1, 2, 0, x.data(), y.data());
  EXPECT_EQ(x, y);
}

}  // namespace
}  // namespace fer
