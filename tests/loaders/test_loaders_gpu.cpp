// GPU side of the input pipeline (ctest label "gpu"; skipped without a device):
//   * kernels::cuda::images_to_float matches the CPU kernel (same draws, same math);
//   * the BatchStream's CUDA path (pinned ring, copy stream, events) delivers the right bytes to
//     the device even when the compute stream lags far behind the loader (event-guarded reuse).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <thread>
#include <vector>

#include "engine/backend.h"
#include "kernels/common/augment.h"
#include "kernels/cpu/augment.h"
#include "loaders/batch_stream.h"
#include "loaders/dataset.h"

#if FER_HAVE_CUDA
#include <cuda_runtime.h>

#include "kernels/cuda/augment.cuh"
#endif

namespace fer {
namespace {

// GPU against CPU augmentation (images_to_float with draws): nvcc fuses the multiply-adds of the
// warp (augment_pixel, sample_bilinear_nearest), the host build need not, so a source coordinate
// may differ by ~u * side (6e-6 px at 100 px), which moves a sample by that times the neighbouring
// pixels' step (at most 1). A simulated worst case over these tests' shapes was 7.3e-6; 3e-5 leaves
// 4x room, and a real defect (a half-pixel shift, a wrong border) is 1e-2 or more.
constexpr double kWarpTol = 3e-5;

#define SKIP_WITHOUT_DEVICE()                                              \
  do {                                                                     \
    std::string why;                                                       \
    if (!fer::cuda_device_available(&why)) GTEST_SKIP() << "no CUDA device: " << why; \
  } while (0)

#if FER_HAVE_CUDA

#define CK(call) ASSERT_EQ((call), cudaSuccess) << #call

std::vector<uint8_t> random_images(int n, int h, int w, uint32_t seed) {
  std::vector<uint8_t> v(size_t(n) * h * w);
  uint32_t x = seed;
  for (auto& p : v) {
    x = x * 1664525u + 1013904223u;
    p = uint8_t(x >> 24);
  }
  return v;
}

void gpu_vs_cpu(int n, int h, int w, const kernels::AugmentConfig& cfg, bool with_draws) {
  const auto imgs = random_images(n, h, w, uint32_t(n * 7 + h));
  std::vector<AugmentDraw> draws(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) draws[size_t(i)] = kernels::augment_draw(31, 4, uint64_t(i), cfg);
  std::vector<float> cpu(imgs.size()), gpu(imgs.size());
  kernels::cpu::images_to_float(n, h, w, imgs.data(), with_draws ? draws.data() : nullptr, cpu.data());

  uint8_t* d_src = nullptr;
  AugmentDraw* d_draws = nullptr;
  float* d_dst = nullptr;
  CK(cudaMalloc(&d_src, imgs.size()));
  CK(cudaMalloc(&d_draws, draws.size() * sizeof(AugmentDraw)));
  CK(cudaMalloc(&d_dst, gpu.size() * sizeof(float)));
  CK(cudaMemcpy(d_src, imgs.data(), imgs.size(), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(d_draws, draws.data(), draws.size() * sizeof(AugmentDraw), cudaMemcpyHostToDevice));
  kernels::cuda::images_to_float(n, h, w, d_src, with_draws ? d_draws : nullptr, d_dst, nullptr);
  CK(cudaDeviceSynchronize());
  CK(cudaMemcpy(gpu.data(), d_dst, gpu.size() * sizeof(float), cudaMemcpyDeviceToHost));
  cudaFree(d_src);
  cudaFree(d_draws);
  cudaFree(d_dst);
  double worst = 0;
  for (size_t i = 0; i < cpu.size(); ++i) worst = std::max(worst, double(std::abs(cpu[i] - gpu[i])));
  // Same coefficients (formed in double, rounded once); only FMA contraction may differ (kWarpTol).
  if (with_draws) {
    EXPECT_LT(worst, kWarpTol) << n << "x" << h << "x" << w;
  } else {
    EXPECT_EQ(worst, 0.0);
  }
}

TEST(AugmentGpu, KernelMatchesCpu) {
  SKIP_WITHOUT_DEVICE();
  kernels::AugmentConfig strong;
  strong.shear_range_deg = 40.0f;
  strong.zoom_range = 0.5f;
  strong.horizontal_flip = true;
  gpu_vs_cpu(64, 48, 48, kernels::AugmentConfig::original_project(), true);
  gpu_vs_cpu(37, 48, 48, strong, true);
  gpu_vs_cpu(5, 7, 11, strong, true);
  gpu_vs_cpu(3, 100, 90, strong, true);
  gpu_vs_cpu(64, 48, 48, strong, false);
}

TEST(BatchStreamGpu, EventOrderedCopiesSurviveASlowComputeStream) {
  SKIP_WITHOUT_DEVICE();
  // Dataset of distinct images.
  const int64_t n = 640;
  loaders::RawData raw;
  raw.pixels = random_images(int(n), 48, 48, 5);
  for (int64_t r = 0; r < n; ++r) {
    raw.fer_ids.push_back(uint8_t(r % 7));
    raw.usage.push_back(loaders::Usage::training);
  }
  const loaders::Dataset data = loaders::make_dataset(std::move(raw), "gpu-test", {});
  auto backend = make_cuda_backend();
  cudaStream_t compute = static_cast<cudaStream_t>(backend->native_stream());

  loaders::BatchStreamOptions o;
  o.batch_size = 32;
  o.ring_slots = 2;  // maximal reuse pressure
  o.seed = 77;
  o.augment = kernels::AugmentConfig::original_project();
  loaders::BatchStream stream(data, data.train_rows, o, backend.get());
  ASSERT_TRUE(stream.pinned());
  ASSERT_TRUE(stream.on_device());
  const int64_t batches = stream.batches_per_epoch();
  const size_t img = 2304;

  float* d_out = nullptr;
  int32_t* d_labels = nullptr;
  CK(cudaMalloc(&d_out, size_t(batches) * 32 * img * sizeof(float)));
  CK(cudaMalloc(&d_labels, size_t(batches) * 32 * sizeof(int32_t)));

  for (int epoch = 0; epoch < 2; ++epoch) {
    std::vector<int64_t> rows;
    int64_t k = 0;
    while (const loaders::Batch* b = stream.next()) {
      ASSERT_NE(b->pixels, b->host_pixels);
      rows.insert(rows.end(), b->rows, b->rows + b->size);
      // Hold the compute stream up so the loader runs ahead; the copies into this slot must
      // still wait for the work below.
      CK(cudaLaunchHostFunc(
          compute, [](void*) { std::this_thread::sleep_for(std::chrono::milliseconds(3)); }, nullptr));
      backend->images_to_float(b->size, 48, 48, b->pixels, b->draws, d_out + size_t(k) * 32 * img);
      CK(cudaMemcpyAsync(d_labels + k * 32, b->labels, size_t(b->size) * sizeof(int32_t),
                         cudaMemcpyDeviceToDevice, compute));
      stream.release();
      ++k;
    }
    ASSERT_EQ(k, batches);
    backend->synchronize();
    std::vector<float> got(size_t(batches) * 32 * img);
    std::vector<int32_t> labels(size_t(batches) * 32);
    CK(cudaMemcpy(got.data(), d_out, got.size() * sizeof(float), cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(labels.data(), d_labels, labels.size() * sizeof(int32_t), cudaMemcpyDeviceToHost));
    // Expected: the CPU kernel on the dataset rows with the documented draws.
    std::vector<float> want(img);
    double worst = 0;
    for (size_t i = 0; i < rows.size(); ++i) {
      const AugmentDraw d = kernels::augment_draw(77, uint64_t(epoch), uint64_t(rows[i]), o.augment);
      kernels::cpu::images_to_float(1, 48, 48, data.image(rows[i]), &d, want.data());
      for (size_t p = 0; p < img; ++p) worst = std::max(worst, double(std::abs(want[p] - got[i * img + p])));
      ASSERT_EQ(labels[i], data.labels[size_t(rows[i])]) << "image " << i;
    }
    EXPECT_LT(worst, kWarpTol) << "epoch " << epoch;
    const loaders::EpochStats st = stream.last_epoch_stats();
    EXPECT_EQ(st.batches, batches);
  }
  cudaFree(d_out);
  cudaFree(d_labels);
}

TEST(BatchStreamGpu, DestroyWithWorkInFlight) {
  SKIP_WITHOUT_DEVICE();
  loaders::RawData raw;
  raw.pixels = random_images(256, 48, 48, 9);
  raw.fer_ids.assign(256, 3);
  raw.usage.assign(256, loaders::Usage::training);
  const loaders::Dataset data = loaders::make_dataset(std::move(raw), "gpu-test", {});
  auto backend = make_cuda_backend();
  cudaStream_t compute = static_cast<cudaStream_t>(backend->native_stream());
  float* d_out = nullptr;
  CK(cudaMalloc(&d_out, 32 * 2304 * sizeof(float)));
  {
    loaders::BatchStreamOptions o;
    o.batch_size = 32;
    loaders::BatchStream stream(data, data.train_rows, o, backend.get());
    const loaders::Batch* b = stream.next();
    ASSERT_NE(b, nullptr);
    CK(cudaLaunchHostFunc(
        compute, [](void*) { std::this_thread::sleep_for(std::chrono::milliseconds(20)); }, nullptr));
    backend->images_to_float(b->size, 48, 48, b->pixels, nullptr, d_out);
    // Destroyed while the kernel still waits behind the host function and holds the batch.
  }
  backend->synchronize();
  cudaFree(d_out);
}

#else

TEST(AugmentGpu, KernelMatchesCpu) { GTEST_SKIP() << "this build has no CUDA backend"; }

#endif

}  // namespace
}  // namespace fer
