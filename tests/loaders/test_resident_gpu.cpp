// The resident-data path on a CUDA device (ctest label "gpu"; skipped without one):
//   * kernels::cuda::gather_rows equals the CPU gather byte for byte (16-byte vector path and
//     byte path), labels included;
//   * kernels::cuda::augment_draws equals the host's augment_draw bit for bit (shared math with
//     an explicit fma, so nvcc's contraction cannot change a draw);
//   * ResidentBatches on the device deliver the BatchStream's batches, and the float input the
//     device makes from them equals the one it makes from the streamed batch, bit for bit.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "kernels/common/augment.h"
#include "kernels/cpu/gather.h"
#include "loaders/batch_stream.h"
#include "loaders/dataset.h"
#include "loaders/resident_data.h"

namespace fer::loaders {
namespace {

#define SKIP_WITHOUT_DEVICE()                                                          \
  do {                                                                                 \
    std::string why;                                                                   \
    if (!fer::cuda_device_available(&why)) GTEST_SKIP() << "no CUDA device: " << why;  \
  } while (0)

constexpr int kPx = 2304;

// A byte buffer in a backend's memory.
class DeviceBytes {
 public:
  DeviceBytes(Backend& b, size_t n) : b_(b), n_(n), p_(static_cast<uint8_t*>(b.allocate(n ? n : 1))) {}
  ~DeviceBytes() { b_.deallocate(p_); }
  DeviceBytes(const DeviceBytes&) = delete;
  DeviceBytes& operator=(const DeviceBytes&) = delete;
  template <class T>
  T* as(size_t byte_offset = 0) const { return reinterpret_cast<T*>(p_ + byte_offset); }
  template <class T>
  void upload(const std::vector<T>& v, size_t byte_offset = 0) {
    b_.copy_from_host(p_ + byte_offset, v.data(), v.size() * sizeof(T));
  }
  template <class T>
  std::vector<T> download(size_t count, size_t byte_offset = 0) const {
    std::vector<T> v(count);
    b_.synchronize();
    b_.copy_to_host(v.data(), p_ + byte_offset, count * sizeof(T));
    return v;
  }

 private:
  Backend& b_;
  size_t n_;
  uint8_t* p_;
};

std::shared_ptr<Backend> cuda() { return make_cuda_backend(0); }

TEST(ResidentGpu, GatherRowsMatchesTheCpuByteForByte) {
  SKIP_WITHOUT_DEVICE();
  auto gpu = cuda();
  std::mt19937 gen(17);
  struct Shape {
    int64_t row_bytes;
    size_t dst_offset;  // 1: a misaligned destination takes the byte path
  };
  for (const Shape s : {Shape{kPx, 0}, Shape{kPx, 1}, Shape{kPx + 5, 0}, Shape{7, 0}, Shape{16, 0}}) {
    for (const int n : {1, 128, 301}) {
      const int rows = 257;
      std::vector<uint8_t> images(size_t(rows * s.row_bytes));
      for (auto& v : images) v = uint8_t(gen());
      std::vector<int32_t> labels(rows), idx(n);
      for (int r = 0; r < rows; ++r) labels[size_t(r)] = r % 6;
      for (auto& i : idx) i = int32_t(gen() % rows);
      std::vector<uint8_t> want(size_t(n) * size_t(s.row_bytes));
      std::vector<int32_t> want_labels(n);
      kernels::cpu::gather_rows(n, idx.data(), images.data(), labels.data(), s.row_bytes, want.data(), want_labels.data());

      DeviceBytes d_images(*gpu, images.size()), d_labels(*gpu, labels.size() * 4), d_idx(*gpu, idx.size() * 4);
      DeviceBytes d_out(*gpu, want.size() + s.dst_offset), d_out_labels(*gpu, size_t(n) * 4);
      d_images.upload(images);
      d_labels.upload(labels);
      d_idx.upload(idx);
      gpu->gather_rows(n, d_idx.as<int32_t>(), d_images.as<uint8_t>(), d_labels.as<int32_t>(), s.row_bytes,
                       d_out.as<uint8_t>(s.dst_offset), d_out_labels.as<int32_t>());
      EXPECT_TRUE(d_out.download<uint8_t>(want.size(), s.dst_offset) == want)
          << "row_bytes " << s.row_bytes << " offset " << s.dst_offset << " n " << n;
      EXPECT_EQ(d_out_labels.download<int32_t>(size_t(n)), want_labels);
    }
  }
}

TEST(ResidentGpu, AugmentDrawsEqualTheHostDrawsBitForBit) {
  SKIP_WITHOUT_DEVICE();
  auto gpu = cuda();
  std::mt19937 gen(23);
  const int rows = 1000, n = 777;
  std::vector<int64_t> keys(rows);
  for (auto& k : keys) k = int64_t(gen()) * 13 + 1;
  std::vector<int32_t> idx(n);
  for (auto& i : idx) i = int32_t(gen() % rows);
  DeviceBytes d_keys(*gpu, keys.size() * 8), d_idx(*gpu, idx.size() * 4), d_draws(*gpu, size_t(n) * sizeof(AugmentDraw));
  d_keys.upload(keys);
  d_idx.upload(idx);
  for (const auto& cfg : {kernels::AugmentConfig::original_project(), kernels::AugmentConfig{45.0f, 0.6f, true},
                          kernels::AugmentConfig{0.0f, 0.25f, false}}) {
    for (const uint64_t epoch : {uint64_t(0), uint64_t(7), uint64_t(49)}) {
      for (const bool with_keys : {true, false}) {
        gpu->augment_draws(n, d_idx.as<int32_t>(), with_keys ? d_keys.as<int64_t>() : nullptr, 42, epoch, cfg,
                           d_draws.as<AugmentDraw>());
        const auto got = d_draws.download<AugmentDraw>(size_t(n));
        for (int i = 0; i < n; ++i) {
          const uint64_t key = with_keys ? uint64_t(keys[size_t(idx[size_t(i)])]) : uint64_t(idx[size_t(i)]);
          const AugmentDraw want = kernels::augment_draw(42, epoch, key, cfg);
          ASSERT_EQ(0, std::memcmp(&got[size_t(i)], &want, sizeof want))
              << "image " << i << " epoch " << epoch << (with_keys ? " keyed" : " by index");
        }
      }
    }
  }
}

Dataset synthetic(int64_t n) {
  RawData raw;
  raw.pixels.resize(size_t(n) * kPx);
  for (int64_t r = 0; r < n; ++r) {
    uint8_t* p = raw.pixels.data() + r * kPx;
    std::memcpy(p, &r, 8);
    for (int i = 8; i < kPx; ++i) p[i] = uint8_t(r * 29 + i * 5);
    raw.fer_ids.push_back(uint8_t(r % 7));
    raw.usage.push_back(r % 4 == 3 ? Usage::private_test : Usage::training);
  }
  return make_dataset(std::move(raw), "synthetic", {});
}

TEST(ResidentGpu, BatchesAndTheirFloatInputEqualTheStreamsBitForBit) {
  SKIP_WITHOUT_DEVICE();
  std::shared_ptr<Backend> gpu = cuda();
  const Dataset d = synthetic(211);
  BatchStreamOptions o;
  o.batch_size = 32;
  o.seed = 2024;
  o.drop_last = false;
  o.augment = kernels::AugmentConfig::original_project();
  std::vector<int64_t> held(d.train_rows.rbegin(), d.train_rows.rend());
  held.insert(held.end(), d.validation_rows.begin(), d.validation_rows.end());
  ResidentData resident(d, held, gpu);
  ResidentBatches batches(resident, d.train_rows, o);
  BatchStream stream(d, d.train_rows, o);  // host batches: uploaded below like the stream's device slots

  const size_t max_px = size_t(o.batch_size) * kPx;
  DeviceBytes r_px(*gpu, max_px), r_lb(*gpu, size_t(o.batch_size) * 4), r_dr(*gpu, size_t(o.batch_size) * sizeof(AugmentDraw));
  DeviceBytes s_px(*gpu, max_px), s_dr(*gpu, size_t(o.batch_size) * sizeof(AugmentDraw));
  DeviceBytes r_in(*gpu, max_px * 4), s_in(*gpu, max_px * 4);
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    int64_t k = 0;
    while (const Batch* b = stream.next()) {
      const int n = batches.gather(epoch, k, r_px.as<uint8_t>(), r_lb.as<int32_t>(), r_dr.as<AugmentDraw>());
      ASSERT_EQ(n, b->size);
      const std::string where = "epoch " + std::to_string(epoch) + " batch " + std::to_string(k);
      EXPECT_TRUE(r_px.download<uint8_t>(size_t(n) * kPx) ==
                  std::vector<uint8_t>(b->host_pixels, b->host_pixels + size_t(n) * kPx))
          << where;
      EXPECT_EQ(r_lb.download<int32_t>(size_t(n)), std::vector<int32_t>(b->host_labels, b->host_labels + n)) << where;
      const auto draws = r_dr.download<AugmentDraw>(size_t(n));
      ASSERT_EQ(0, std::memcmp(draws.data(), b->host_draws, size_t(n) * sizeof(AugmentDraw))) << where;
      // The float input: the same kernel on the same bytes and draws.
      s_px.upload(std::vector<uint8_t>(b->host_pixels, b->host_pixels + size_t(n) * kPx));
      s_dr.upload(std::vector<AugmentDraw>(b->host_draws, b->host_draws + n));
      gpu->images_to_float(n, 48, 48, r_px.as<uint8_t>(), r_dr.as<AugmentDraw>(), r_in.as<float>());
      gpu->images_to_float(n, 48, 48, s_px.as<uint8_t>(), s_dr.as<AugmentDraw>(), s_in.as<float>());
      const auto a = r_in.download<float>(size_t(n) * kPx), c = s_in.download<float>(size_t(n) * kPx);
      ASSERT_EQ(0, std::memcmp(a.data(), c.data(), a.size() * sizeof(float))) << where;
      ++k;
    }
    EXPECT_EQ(k, batches.batches_per_epoch());
  }
}

TEST(ResidentGpu, AutomaticModeHoldsFer2013SizedDataOnABigDevice) {
  SKIP_WITHOUT_DEVICE();
  auto gpu = cuda();
  size_t free_bytes = 0, total = 0;
  ASSERT_TRUE(gpu->memory_info(&free_bytes, &total));
  const size_t fer = size_t(83) << 20;
  const ResidentChoice c = choose_resident(ResidentMode::automatic, *gpu, fer);
  EXPECT_EQ(c.resident, fer * kResidentFreeMemoryFactor <= free_bytes) << c.reason;
  std::printf("[ info ] %s\n", c.reason.c_str());
}

}  // namespace
}  // namespace fer::loaders
