// The two-stage per-channel reductions on a GPU (kernels/cuda/bias.cu, batch_norm.cu), called
// directly: large row counts (a 32-channel first layer at batch 128: 294,912 rows), odd channel
// counts, a channel mean far from zero (the one-pass shifted variance), against double-precision
// host sums; and bitwise repeatability (fixed summation order).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include <cuda_runtime_api.h>

#include "kernels/cuda/batch_norm.cuh"
#include "kernels/cuda/bias.cuh"
#include "kernels/cuda/launch_util.cuh"
#include "tests/gpu/gpu_test_util.h"

namespace fer::gputest {
namespace {

namespace kc = kernels::cuda;

struct Shape {
  int64_t rows;
  int channels;
};
const Shape kShapes[] = {{128 * 48 * 48, 32}, {128 * 12 * 12, 128}, {257, 33}, {128, 1031}, {1, 5}, {3000, 1}};

template <class T>
struct Dev {
  T* p = nullptr;
  explicit Dev(size_t n) { EXPECT_EQ(cudaMalloc(reinterpret_cast<void**>(&p), std::max<size_t>(n, 1) * sizeof(T)), cudaSuccess); }
  Dev(const std::vector<T>& h) : Dev(h.size()) {
    EXPECT_EQ(cudaMemcpy(p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  }
  ~Dev() { cudaFree(p); }
  std::vector<T> get(size_t n) const {
    std::vector<T> h(n);
    EXPECT_EQ(cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return h;
  }
};

class ChannelReduction : public ::testing::TestWithParam<int> {};

TEST_P(ChannelReduction, BiasGradAndBatchNormMatchDoubleSumsAndRepeat) {
  FER_REQUIRE_CUDA_DEVICE();
  const Shape s = kShapes[GetParam()];
  const size_t n = size_t(s.rows) * size_t(s.channels), C = size_t(s.channels);
  auto x = testing::random_floats(n, 5);
  for (size_t i = 0; i < n; ++i) x[i] = 1000.0f + x[i];  // mean 1000, spread ~0.6: var needs care
  const auto dy = testing::random_floats(n, 6);
  std::vector<double> sum_dy(C, 0), mean(C, 0), var(C, 0), sum_dyx(C, 0);
  for (size_t i = 0; i < n; ++i) { sum_dy[i % C] += dy[i]; mean[i % C] += x[i]; }
  for (size_t c = 0; c < C; ++c) mean[c] /= double(s.rows);
  for (size_t i = 0; i < n; ++i) {
    const double d = x[i] - mean[i % C];
    var[i % C] += d * d;
  }
  for (size_t c = 0; c < C; ++c) var[c] /= double(s.rows);
  const float eps = 1e-3f;

  Dev<float> x_(x), dy_(dy), db(C), sm(C), si(C), y(n), dg(C), dbeta(C), dx(n);
  Dev<double> scratch(kc::kReduceScratchBytes / sizeof(double));
  std::vector<float> first[5];
  for (int run = 0; run < 2; ++run) {
    ASSERT_EQ(kc::bias_grad(s.rows, s.channels, dy_.p, db.p, scratch.p, kc::kReduceScratchBytes, nullptr), cudaSuccess);
    ASSERT_EQ(kc::batchnorm_forward_train(s.rows, s.channels, x_.p, nullptr, nullptr, y.p, sm.p, si.p, nullptr,
                                          nullptr, 0.99f, eps, scratch.p, kc::kReduceScratchBytes, nullptr),
              cudaSuccess);
    ASSERT_EQ(kc::batchnorm_backward(s.rows, s.channels, x_.p, nullptr, dy_.p, sm.p, si.p, dx.p, dg.p, dbeta.p,
                                     scratch.p, kc::kReduceScratchBytes, nullptr),
              cudaSuccess);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const std::vector<float> got[5] = {db.get(C), sm.get(C), si.get(C), dbeta.get(C), dg.get(C)};
    if (run == 0) {
      for (int k = 0; k < 5; ++k) first[k] = got[k];
      for (size_t c = 0; c < C; ++c) {
        // Sums of n uniform terms in double, rounded once to float: a few float ulps at most.
        const double dy_scale = std::sqrt(double(s.rows)) + 1;
        EXPECT_NEAR(got[0][c], sum_dy[c], 1e-5 * dy_scale) << "bias c=" << c;
        EXPECT_NEAR(got[3][c], sum_dy[c], 1e-5 * dy_scale) << "dbeta c=" << c;
        EXPECT_NEAR(got[1][c], mean[c], 1e-7 * std::fabs(mean[c])) << "mean c=" << c;
        const double invstd = 1.0 / std::sqrt(var[c] + eps);
        EXPECT_NEAR(got[2][c], invstd, 2e-6 * invstd) << "invstd c=" << c;
      }
    } else {
      for (int k = 0; k < 5; ++k) EXPECT_EQ(got[k], first[k]) << "not bitwise repeatable, output " << k;
    }
  }
  EXPECT_EQ(kc::bias_grad(s.rows, s.channels, dy_.p, db.p, nullptr, 0, nullptr), cudaErrorInvalidValue);
}

INSTANTIATE_TEST_SUITE_P(Shapes, ChannelReduction, ::testing::Range(0, int(std::size(kShapes))));

}  // namespace
}  // namespace fer::gputest
