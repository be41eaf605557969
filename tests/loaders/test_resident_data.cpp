// The resident-data path on the CPU: the gather and draw ops against plain loops, ResidentBatches
// against the BatchStream (same rows, labels and draws, bit for bit), the resident-or-stream
// decision with made-up memory numbers, and the errors.
#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <stdexcept>
#include <vector>

#include "engine/backend.h"
#include "engine/error.h"
#include "kernels/common/augment.h"
#include "kernels/cpu/augment.h"
#include "kernels/cpu/gather.h"
#include "loaders/batch_stream.h"
#include "loaders/dataset.h"
#include "loaders/resident_data.h"

namespace fer::loaders {
namespace {

constexpr int kPx = 2304;

// Row r: its id in the first 8 bytes, then a pattern; FER id r % 7 (so label r % 7); usage
// Training for two rows in three, PublicTest for the rest.
Dataset synthetic(int64_t n) {
  RawData raw;
  raw.pixels.resize(size_t(n) * kPx);
  for (int64_t r = 0; r < n; ++r) {
    uint8_t* p = raw.pixels.data() + r * kPx;
    std::memcpy(p, &r, 8);
    for (int i = 8; i < kPx; ++i) p[i] = uint8_t(r * 31 + i * 7);
    raw.fer_ids.push_back(uint8_t(r % 7));
    raw.usage.push_back(r % 3 == 2 ? Usage::public_test : Usage::training);
  }
  return make_dataset(std::move(raw), "synthetic", {});
}

bool same_bits(const AugmentDraw& a, const AugmentDraw& b) { return std::memcmp(&a, &b, sizeof a) == 0; }

// ---- the ops ----

TEST(GatherRows, CpuKernelMatchesAPlainLoop) {
  std::mt19937 gen(11);
  for (const int64_t row_bytes : {int64_t(1), int64_t(7), int64_t(kPx), int64_t(kPx + 3)}) {
    const int rows = 37, n = 29;  // more picks than distinct rows: repeats included
    std::vector<uint8_t> images(size_t(rows * row_bytes));
    for (auto& v : images) v = uint8_t(gen());
    std::vector<int32_t> labels(rows);
    for (int r = 0; r < rows; ++r) labels[size_t(r)] = r * 3 - 5;
    std::vector<int32_t> idx(n);
    for (auto& i : idx) i = int32_t(gen() % rows);
    idx[0] = 0;
    idx[1] = rows - 1;

    std::vector<uint8_t> want(size_t(n * row_bytes)), got(want.size(), 0xAB);
    std::vector<int32_t> want_labels(n), got_labels(n, -99);
    for (int i = 0; i < n; ++i) {
      for (int64_t b = 0; b < row_bytes; ++b) want[size_t(i * row_bytes + b)] = images[size_t(idx[size_t(i)] * row_bytes + b)];
      want_labels[size_t(i)] = labels[size_t(idx[size_t(i)])];
    }
    kernels::cpu::gather_rows(n, idx.data(), images.data(), labels.data(), row_bytes, got.data(), got_labels.data());
    EXPECT_EQ(got, want) << "row_bytes " << row_bytes;
    EXPECT_EQ(got_labels, want_labels) << "row_bytes " << row_bytes;

    // Through the backend contract, and without labels (they are left alone).
    auto cpu = make_cpu_backend();
    std::vector<uint8_t> again(want.size(), 0);
    std::vector<int32_t> untouched(n, 42);
    cpu->gather_rows(n, idx.data(), images.data(), nullptr, row_bytes, again.data(), untouched.data());
    EXPECT_EQ(again, want);
    EXPECT_EQ(untouched, std::vector<int32_t>(n, 42));
    cpu->gather_rows(0, idx.data(), images.data(), labels.data(), row_bytes, again.data(), untouched.data());
  }
}

// The draws computed by the kernel library (built with -march=native, where a*b+c may become an
// FMA) equal the ones this file computes with the shared header (built without): augment_draw's
// explicit fma makes the bits independent of the build.
TEST(AugmentDraws, CpuKernelEqualsHostDrawsBitForBit) {
  const std::vector<kernels::AugmentConfig> configs = {
      kernels::AugmentConfig::original_project(), kernels::AugmentConfig{45.0f, 0.6f, true},
      kernels::AugmentConfig{0.0f, 0.3f, false}, kernels::AugmentConfig{}};
  std::mt19937 gen(5);
  const int rows = 500, n = 300;
  std::vector<int64_t> keys(rows);
  for (auto& k : keys) k = int64_t(gen()) * 7 + 3;  // data-set rows beyond int32 too
  std::vector<int32_t> idx(n);
  for (auto& i : idx) i = int32_t(gen() % rows);
  for (const auto& cfg : configs) {
    for (const uint64_t epoch : {uint64_t(0), uint64_t(1), uint64_t(49)}) {
      std::vector<AugmentDraw> with_keys(n), without(n);
      kernels::cpu::augment_draws(n, idx.data(), keys.data(), 1234, epoch, cfg, with_keys.data());
      make_cpu_backend()->augment_draws(n, idx.data(), nullptr, 1234, epoch, cfg, without.data());
      for (int i = 0; i < n; ++i) {
        const AugmentDraw a = kernels::augment_draw(1234, epoch, uint64_t(keys[size_t(idx[size_t(i)])]), cfg);
        const AugmentDraw b = kernels::augment_draw(1234, epoch, uint64_t(idx[size_t(i)]), cfg);
        ASSERT_TRUE(same_bits(with_keys[size_t(i)], a)) << "image " << i << " epoch " << epoch;
        ASSERT_TRUE(same_bits(without[size_t(i)], b)) << "image " << i << " epoch " << epoch;
      }
    }
  }
}

// ---- ResidentBatches vs BatchStream ----

struct Collected {
  std::vector<uint8_t> pixels;
  std::vector<int32_t> labels;
  std::vector<AugmentDraw> draws;
};

Collected from_stream(const Batch& b, int64_t row_bytes) {
  Collected c;
  c.pixels.assign(b.host_pixels, b.host_pixels + size_t(b.size) * size_t(row_bytes));
  c.labels.assign(b.host_labels, b.host_labels + b.size);
  if (b.host_draws) c.draws.assign(b.host_draws, b.host_draws + b.size);
  return c;
}

void expect_same(const Collected& a, const Collected& b, const std::string& where) {
  ASSERT_EQ(a.pixels.size(), b.pixels.size()) << where;
  EXPECT_TRUE(a.pixels == b.pixels) << where << ": pixels differ";
  EXPECT_EQ(a.labels, b.labels) << where;
  ASSERT_EQ(a.draws.size(), b.draws.size()) << where;
  for (size_t i = 0; i < a.draws.size(); ++i) EXPECT_TRUE(same_bits(a.draws[i], b.draws[i])) << where << " draw " << i;
}

struct Case {
  bool shuffle, drop_last, augment;
  int batch;
  int64_t first_epoch;
};

class ResidentVsStream : public ::testing::TestWithParam<Case> {};

TEST_P(ResidentVsStream, SameBatchesBitForBit) {
  const Case c = GetParam();
  const Dataset d = synthetic(103);
  BatchStreamOptions o;
  o.batch_size = c.batch;
  o.shuffle = c.shuffle;
  o.drop_last = c.drop_last;
  o.seed = 987654321;
  o.first_epoch = c.first_epoch;
  if (c.augment) o.augment = kernels::AugmentConfig{30.0f, 0.4f, true};

  // Hold every row, in reverse order, so resident positions differ from data-set rows (the draws
  // must be keyed by the data-set row, not the position).
  std::vector<int64_t> held;
  for (int64_t r = d.size() - 1; r >= 0; --r) held.push_back(r);
  std::shared_ptr<Backend> cpu = make_cpu_backend();
  ResidentData resident(d, held, cpu);
  ASSERT_EQ(resident.size(), d.size());
  EXPECT_EQ(resident.bytes(), resident_bytes(d, d.size()));
  EXPECT_EQ(resident.position_of(0), int32_t(d.size() - 1));

  BatchStream stream(d, d.train_rows, o);
  ResidentBatches batches(resident, d.train_rows, o);
  ASSERT_EQ(batches.batches_per_epoch(), stream.batches_per_epoch());
  ASSERT_EQ(batches.images_per_epoch(), stream.images_per_epoch());
  EXPECT_EQ(batches.augment(), c.augment);

  // The CPU backend's memory is host memory: gather straight into vectors. Epochs are visited
  // out of order on the resident side (any (epoch, batch) can be gathered directly).
  std::vector<std::vector<Collected>> streamed;
  for (int e = 0; e < 3; ++e) {
    streamed.emplace_back();
    while (const Batch* b = stream.next()) streamed.back().push_back(from_stream(*b, d.image_bytes()));
  }
  for (const int e : {2, 0, 1}) {
    const int64_t epoch = c.first_epoch + e;
    ASSERT_EQ(int64_t(streamed[size_t(e)].size()), batches.batches_per_epoch());
    for (int64_t k = 0; k < batches.batches_per_epoch(); ++k) {
      const int n = batches.batch_size(k);
      Collected got;
      got.pixels.assign(size_t(n) * size_t(d.image_bytes()), 0);
      got.labels.assign(size_t(n), -1);
      if (c.augment) got.draws.assign(size_t(n), AugmentDraw{});
      ASSERT_EQ(batches.gather(epoch, k, got.pixels.data(), got.labels.data(), c.augment ? got.draws.data() : nullptr), n);
      expect_same(streamed[size_t(e)][size_t(k)], got, "epoch " + std::to_string(epoch) + " batch " + std::to_string(k));
    }
  }
  EXPECT_GE(batches.take_host_seconds(), 0.0);
  EXPECT_EQ(batches.take_host_seconds(), 0.0);
}

INSTANTIATE_TEST_SUITE_P(
    Options, ResidentVsStream,
    ::testing::Values(Case{true, true, true, 16, 0}, Case{true, false, true, 16, 0}, Case{true, true, false, 7, 3},
                      Case{false, false, false, 10, 0}, Case{false, true, true, 32, 5}, Case{true, false, false, 69, 0}),
    [](const ::testing::TestParamInfo<Case>& info) {
      const Case& c = info.param;
      return std::string(c.shuffle ? "shuffled" : "ordered") + (c.drop_last ? "_droplast" : "_tail") +
             (c.augment ? "_augment" : "_plain") + "_b" + std::to_string(c.batch) + "_e" + std::to_string(c.first_epoch);
    });

TEST(ResidentData, HoldsASubsetAndUnlabeledRowsAsZero) {
  const Dataset d = synthetic(40);
  std::shared_ptr<Backend> cpu = make_cpu_backend();
  ResidentData held(d, d.validation_rows, cpu);
  EXPECT_EQ(held.size(), int64_t(d.validation_rows.size()));
  EXPECT_EQ(held.position_of(d.train_rows.front()), -1);
  EXPECT_EQ(held.position_of(-3), -1);
  EXPECT_EQ(held.position_of(d.size()), -1);
  for (size_t i = 0; i < d.validation_rows.size(); ++i) {
    const int64_t r = d.validation_rows[i];
    EXPECT_EQ(held.position_of(r), int32_t(i));
    EXPECT_EQ(held.labels()[i], d.labels[size_t(r)]);
    EXPECT_EQ(held.keys()[i], r);
    EXPECT_EQ(0, std::memcmp(held.images() + i * size_t(kPx), d.image(r), kPx));
  }
  // Training rows are not there.
  BatchStreamOptions o;
  o.batch_size = 4;
  EXPECT_THROW(ResidentBatches(held, d.train_rows, o), std::invalid_argument);

  RawData raw;
  raw.labeled = false;
  raw.pixels.assign(size_t(3) * kPx, 9);
  raw.fer_ids.assign(3, kNoLabel);
  raw.usage.assign(3, Usage::training);
  const Dataset unlabeled = make_dataset(std::move(raw), "unlabeled.csv", {});
  ResidentData u(unlabeled, {0, 1, 2}, cpu);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(u.labels()[i], 0);
}

TEST(ResidentData, RefusesBadRowsAndSplits) {
  const Dataset d = synthetic(20);
  std::shared_ptr<Backend> cpu = make_cpu_backend();
  EXPECT_THROW(ResidentData(d, {}, cpu), UserError);
  EXPECT_THROW(ResidentData(d, {0, 20}, cpu), std::out_of_range);
  EXPECT_THROW(ResidentData(d, {-1}, cpu), std::out_of_range);
  EXPECT_THROW(ResidentData(d, {3, 4, 3}, cpu), std::invalid_argument);
  ResidentData all(d, d.train_rows, cpu);
  BatchStreamOptions o;
  o.batch_size = 100;  // more than the split, drop_last: not one batch
  try {
    ResidentBatches b(all, d.train_rows, o);
    ADD_FAILURE() << "expected a UserError";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("lower the batch size"), std::string::npos) << e.what();
  }
  o.drop_last = false;
  ResidentBatches tail(all, d.train_rows, o);
  EXPECT_EQ(tail.batches_per_epoch(), 1);
  EXPECT_EQ(tail.batch_size(0), int(d.train_rows.size()));
  EXPECT_THROW(tail.batch_size(1), std::out_of_range);
  o.batch_size = 0;
  EXPECT_THROW(ResidentBatches(all, d.train_rows, o), UserError);
  EXPECT_THROW(ResidentBatches(all, {}, BatchStreamOptions{}), UserError);
}

// ---- resident or stream ----

TEST(ResidentChoice, ModesAndTheFreeMemoryRule) {
  constexpr size_t MiB = size_t(1) << 20, GiB = size_t(1) << 30;
  const size_t fer = 83 * MiB;  // FER2013's 35,887 images with labels and keys
  using M = ResidentMode;
  // Forced either way, whatever the device says.
  EXPECT_FALSE(choose_resident(M::off, DeviceKind::cuda, fer, true, 80 * GiB).resident);
  EXPECT_TRUE(choose_resident(M::on, DeviceKind::cuda, fer, true, 10 * MiB).resident);
  EXPECT_TRUE(choose_resident(M::on, DeviceKind::cpu, fer, false, 0).resident);
  // Automatic: the CPU streams; CUDA holds the data when it takes at most a quarter of the free memory.
  EXPECT_FALSE(choose_resident(M::automatic, DeviceKind::cpu, fer, true, 500 * GiB).resident);
  EXPECT_FALSE(choose_resident(M::automatic, DeviceKind::cuda, fer, false, 80 * GiB).resident);
  const ResidentChoice h100 = choose_resident(M::automatic, DeviceKind::cuda, fer, true, 79 * GiB);
  EXPECT_TRUE(h100.resident);
  EXPECT_NE(h100.reason.find("83 MiB of 79.0 GiB free"), std::string::npos) << h100.reason;
  const ResidentChoice small = choose_resident(M::automatic, DeviceKind::cuda, fer, true, 300 * MiB);
  EXPECT_FALSE(small.resident);  // 4 x 83 MiB > 300 MiB
  EXPECT_NE(small.reason.find("streamed"), std::string::npos) << small.reason;
  EXPECT_NE(small.reason.find("\"on\" forces it"), std::string::npos) << small.reason;
  // The boundary, and sizes near the top of size_t (no overflow).
  EXPECT_TRUE(choose_resident(M::automatic, DeviceKind::cuda, 100, true, 400).resident);
  EXPECT_FALSE(choose_resident(M::automatic, DeviceKind::cuda, 101, true, 400).resident);
  const size_t huge = std::numeric_limits<size_t>::max();
  EXPECT_FALSE(choose_resident(M::automatic, DeviceKind::cuda, huge / 2, true, huge).resident);
  EXPECT_TRUE(choose_resident(M::automatic, DeviceKind::cuda, huge / 8, true, huge).resident);
  // The backend overload asks memory_info: the CPU backend does not answer, so it streams.
  auto cpu = make_cpu_backend();
  EXPECT_FALSE(choose_resident(M::automatic, *cpu, fer).resident);
  EXPECT_TRUE(choose_resident(M::on, *cpu, fer).resident);
  EXPECT_EQ(resident_bytes(synthetic(10), 10), size_t(23040 + 256 + 256));
}

TEST(ResidentChoice, ModeNames) {
  ResidentMode m = ResidentMode::off;
  EXPECT_TRUE(parse_resident_mode("auto", &m));
  EXPECT_EQ(m, ResidentMode::automatic);
  EXPECT_TRUE(parse_resident_mode("on", &m));
  EXPECT_EQ(m, ResidentMode::on);
  EXPECT_TRUE(parse_resident_mode("off", &m));
  EXPECT_EQ(m, ResidentMode::off);
  for (const char* bad : {"", "AUTO", "yes", "true", "1"}) EXPECT_FALSE(parse_resident_mode(bad, &m)) << bad;
  EXPECT_STREQ(resident_mode_name(ResidentMode::automatic), "auto");
  EXPECT_STREQ(resident_mode_name(ResidentMode::on), "on");
  EXPECT_STREQ(resident_mode_name(ResidentMode::off), "off");
}

}  // namespace
}  // namespace fer::loaders
