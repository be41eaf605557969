// CpuBackend (engine/cpu_backend.cpp): host memory is 64-byte aligned, copies and fills work, and
// ops reach kernels/cpu (spot checks against the reference through the Backend interface).
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "engine/backend.h"
#include "tests/ops/op_test_util.h"
#include "tests/reference/reference_ops.h"

namespace fer {
namespace {

TEST(CpuBackend, MemoryIsAlignedAndCopiesWork) {
  auto be = make_cpu_backend();
  EXPECT_EQ(be->kind(), DeviceKind::cpu);
  EXPECT_EQ(be->native_stream(), nullptr);
  for (const size_t bytes : {size_t(0), size_t(1), size_t(100), size_t(1) << 20}) {
    void* p = be->allocate(bytes);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u) << bytes;
    be->deallocate(p);
  }
  const std::vector<float> src = testing::random_floats(1000, 1);
  float* a = static_cast<float*>(be->allocate(4000));
  float* b = static_cast<float*>(be->allocate(4000));
  be->copy_from_host(a, src.data(), 4000);
  be->copy(b, a, 4000);
  std::vector<float> back(1000);
  be->copy_to_host(back.data(), b, 4000);
  EXPECT_EQ(back, src);
  be->fill(a, 1000, 2.5f);
  be->synchronize();
  be->copy_to_host(back.data(), a, 4000);
  EXPECT_EQ(back, std::vector<float>(1000, 2.5f));
  be->deallocate(a);
  be->deallocate(b);
}

TEST(CpuBackend, ConvolutionThroughTheInterface) {
  auto be = make_cpu_backend();
  const auto s = testing::conv_shape(2, 9, 7, 3, 4, 3, 3, 2, 2, testing::Padding::same);
  const auto x = testing::random_floats(size_t(s.x_size()), 1);
  const auto w = testing::random_floats(size_t(s.w_size()), 2);
  const auto b = testing::random_floats(size_t(s.k), 3);
  std::vector<float> y(size_t(s.y_size()));
  std::vector<char> ws(be->conv2d_workspace_bytes(s));
  be->conv2d_forward(s, x.data(), w.data(), b.data(), y.data(), ws.data());
  const auto xd = testing::to_double(x), wd = testing::to_double(w), bd = testing::to_double(b);
  std::vector<double> yr(y.size());
  reference::conv2d_forward(s, xd.data(), wd.data(), bd.data(), yr.data());
  EXPECT_LT(testing::rel_l2_error(y, yr), 1e-5);
}

TEST(CpuBackend, SoftmaxCrossEntropyAccumulatesHostMetrics) {
  auto be = make_cpu_backend();
  const std::vector<float> z = {2.0f, 1.0f, 0.0f, 0.0f, 3.0f, 0.0f};
  const std::vector<int32_t> labels = {0, 2};
  double metrics[2] = {0.0, 0.0};
  be->softmax_cross_entropy(2, 3, z.data(), labels.data(), nullptr, 0.5f, metrics);
  const auto zd = testing::to_double(z);
  double want[2] = {0.0, 0.0};
  reference::softmax_cross_entropy(2, 3, zd.data(), labels.data(), nullptr, 0.5, want);
  EXPECT_NEAR(metrics[0], want[0], 1e-9);
  EXPECT_EQ(metrics[1], 1.0);
}

}  // namespace
}  // namespace fer
