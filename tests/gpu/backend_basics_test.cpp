// CudaBackend plumbing: memory round trips, fill/copy, error messages (out of memory, missing
// workspace, op context), description, and the uint8 -> float input conversion against the CPU.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "engine/cuda/check.h"
#include "engine/cuda/cuda_backend.h"
#include "engine/error.h"
#include "kernels/common/augment.h"
#include "tests/gpu/gpu_test_util.h"

namespace fer::gputest {
namespace {

using testing::random_floats;

TEST(CudaBackendBasics, ReportsWhyNoDeviceOrOpens) {
  std::string why;
  if (!cuda_device_available(&why)) {
    EXPECT_FALSE(why.empty());
    EXPECT_THROW(make_cuda_backend(), DeviceError);
    GTEST_SKIP() << "no CUDA device: " << why;
  }
  auto gpu = make_gpu(true);
  EXPECT_EQ(gpu->kind(), DeviceKind::cuda);
  EXPECT_NE(gpu->native_stream(), nullptr);
  const std::string d = gpu->description();
  EXPECT_NE(d.find("cuDNN"), std::string::npos) << d;
  std::cout << "[          ] " << d << "\n";
}

TEST(CudaBackendBasics, MissingDeviceOrdinalIsAClearError) {
  FER_REQUIRE_CUDA_DEVICE();
  try {
    make_cuda_backend(1000);
    FAIL() << "expected DeviceError";
  } catch (const DeviceError& e) {
    EXPECT_NE(std::string(e.what()).find("1000"), std::string::npos) << e.what();
  }
}

TEST(CudaBackendBasics, CopyFillRoundTrip) {
  FER_REQUIRE_CUDA_DEVICE();
  auto gpu = make_gpu(false);
  const auto host = random_floats(1 << 20 | 7, 1);
  Buffer<float> a(*gpu, host), b(*gpu, host.size());
  gpu->copy(b.get(), a.get(), host.size() * sizeof(float));
  EXPECT_EQ(b.download(), host);
  gpu->fill(a.get(), int64_t(host.size()), 2.5f);
  const auto filled = a.download();
  for (float v : filled) ASSERT_EQ(v, 2.5f);
  gpu->fill(a.get(), 0, 1.0f);  // n = 0 is a no-op
  gpu->synchronize();
}

TEST(CudaBackendBasics, OutOfMemoryNamesBytesAndFree) {
  FER_REQUIRE_CUDA_DEVICE();
  auto gpu = make_gpu(false);
  OpContextScope scope("test/huge_alloc");
  try {
    gpu->allocate(size_t(1) << 50);  // a petabyte
    FAIL() << "expected DeviceError";
  } catch (const DeviceError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(std::to_string(size_t(1) << 50)), std::string::npos) << m;
    EXPECT_NE(m.find("free"), std::string::npos) << m;
    EXPECT_NE(m.find("test/huge_alloc"), std::string::npos) << m;
  }
  // The device stays usable.
  Buffer<float> ok(*gpu, std::vector<float>{1, 2, 3});
  EXPECT_EQ(ok.download(), (std::vector<float>{1, 2, 3}));
}

TEST(CudaBackendBasics, NullWorkspaceIsRefusedWithTheShape) {
  FER_REQUIRE_CUDA_DEVICE();
  auto gpu = make_gpu(false);
  // Stride 2 on an even input: asymmetric padding, so a padded copy (workspace) is needed.
  const ConvShape s = testing::conv_shape(2, 8, 8, 3, 4, 3, 3, 2, 2, testing::Padding::same);
  ASSERT_GT(gpu->conv2d_workspace_bytes(s), 0u);
  Buffer<float> x(*gpu, size_t(s.x_size())), w(*gpu, size_t(s.w_size())), y(*gpu, size_t(s.y_size()));
  try {
    gpu->conv2d_forward(s, x.get(), w.get(), nullptr, y.get(), nullptr);
    FAIL() << "expected DeviceError";
  } catch (const DeviceError& e) {
    EXPECT_NE(std::string(e.what()).find("x[2,8,8,3]"), std::string::npos) << e.what();
  }
}

TEST(CudaBackendBasics, CheckMacroMessageNamesCallOpAndShape) {
  FER_REQUIRE_CUDA_DEVICE();
  OpContextScope outer("fwd/conv2d_1");
  try {
    FER_CUDA_CHECK(cudaErrorInvalidValue, std::string("x[1,2,3,4]"));
    FAIL() << "expected DeviceError";
  } catch (const DeviceError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("cudaErrorInvalidValue"), std::string::npos) << m;
    EXPECT_NE(m.find("fwd/conv2d_1"), std::string::npos) << m;
    EXPECT_NE(m.find("x[1,2,3,4]"), std::string::npos) << m;
  }
}

class ImagesToFloatParity : public ::testing::TestWithParam<bool> {};

TEST_P(ImagesToFloatParity, MatchesCpu) {
  FER_REQUIRE_CUDA_DEVICE();
  const bool augment = GetParam();
  Pair bk(false);
  const int n = 5, h = 48, w = 48;
  std::mt19937 gen(7);
  std::vector<uint8_t> img(size_t(n) * h * w);
  for (auto& v : img) v = uint8_t(gen() & 0xff);
  std::vector<AugmentDraw> draws(static_cast<size_t>(n));
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (int i = 0; i < n; ++i) {
    draws[size_t(i)].shear_rad = 0.2f * u(gen);
    draws[size_t(i)].zoom_x = 1.0f + 0.2f * u(gen);
    draws[size_t(i)].zoom_y = 1.0f + 0.2f * u(gen);
    draws[size_t(i)].flip = i % 2;
  }
  std::vector<float> out[2];
  Backend* backends[2] = {bk.cpu.get(), bk.gpu.get()};
  for (int i = 0; i < 2; ++i) {
    Backend& b = *backends[i];
    Buffer<uint8_t> src(b, img);
    Buffer<float> dst(b, size_t(n) * h * w);
    void* draws_mem = b.allocate(draws.size() * sizeof(AugmentDraw));
    b.copy_from_host(draws_mem, draws.data(), draws.size() * sizeof(AugmentDraw));
    b.images_to_float(n, h, w, src.get(), augment ? static_cast<AugmentDraw*>(draws_mem) : nullptr,
                      dst.get());
    out[i] = dst.download();
    b.deallocate(draws_mem);
  }
  expect_close(out[1], out[0], kFp32Tol, augment ? "augmented" : "plain");
}

INSTANTIATE_TEST_SUITE_P(Modes, ImagesToFloatParity, ::testing::Bool());

}  // namespace
}  // namespace fer::gputest
