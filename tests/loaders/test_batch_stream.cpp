// Batch stream on the host path: coverage, determinism, timing independence, shutdown, errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <set>
#include <stdexcept>
#include <thread>

#include "engine/backend.h"
#include "engine/error.h"
#include "loaders/batch_stream.h"
#include "loaders/dataset.h"

namespace fer::loaders {
namespace {

constexpr int kPx = 2304;

// Row r: its id in the first 8 bytes, then a pattern; FER id r % 7; usage Training.
Dataset synthetic(int64_t n) {
  RawData raw;
  raw.pixels.resize(size_t(n) * kPx);
  for (int64_t r = 0; r < n; ++r) {
    uint8_t* p = raw.pixels.data() + r * kPx;
    std::memcpy(p, &r, 8);
    for (int i = 8; i < kPx; ++i) p[i] = uint8_t(r * 31 + i);
    raw.fer_ids.push_back(uint8_t(r % 7));
    raw.usage.push_back(Usage::training);
  }
  return make_dataset(std::move(raw), "synthetic", {});
}

struct Seen {
  int64_t epoch, index;
  std::vector<int64_t> rows;
  std::vector<int32_t> labels;
  std::vector<AugmentDraw> draws;
};

// Consumes `epochs` epochs; checks every batch against the dataset on the way.
std::vector<Seen> consume(BatchStream& s, const Dataset& d, int epochs,
                          std::chrono::microseconds per_batch = std::chrono::microseconds(0)) {
  std::vector<Seen> out;
  for (int e = 0; e < epochs; ++e) {
    int64_t expect_index = 0;
    while (const Batch* b = s.next()) {
      EXPECT_EQ(b->index, expect_index++);
      EXPECT_EQ(b->last_in_epoch, b->index + 1 == s.batches_per_epoch());
      EXPECT_EQ(b->pixels, b->host_pixels);  // host path
      Seen seen{b->epoch, b->index, {}, {}, {}};
      for (int k = 0; k < b->size; ++k) {
        const int64_t row = b->rows[k];
        int64_t id;
        std::memcpy(&id, b->host_pixels + size_t(k) * kPx, 8);
        EXPECT_EQ(id, row);
        EXPECT_EQ(0, std::memcmp(b->host_pixels + size_t(k) * kPx, d.image(row), kPx));
        EXPECT_EQ(b->host_labels[k], d.labels[size_t(row)]);
        seen.rows.push_back(row);
        seen.labels.push_back(b->host_labels[k]);
        if (b->host_draws) seen.draws.push_back(b->host_draws[k]);
      }
      out.push_back(std::move(seen));
      if (per_batch.count()) std::this_thread::sleep_for(per_batch);
    }
  }
  return out;
}

bool same_draw(const AugmentDraw& a, const AugmentDraw& b) {
  return a.shear_rad == b.shear_rad && a.zoom_x == b.zoom_x && a.zoom_y == b.zoom_y && a.flip == b.flip;
}

void expect_same(const std::vector<Seen>& a, const std::vector<Seen>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].epoch, b[i].epoch);
    EXPECT_EQ(a[i].rows, b[i].rows) << "batch " << i;
    EXPECT_EQ(a[i].labels, b[i].labels);
    ASSERT_EQ(a[i].draws.size(), b[i].draws.size());
    for (size_t k = 0; k < a[i].draws.size(); ++k) EXPECT_TRUE(same_draw(a[i].draws[k], b[i].draws[k]));
  }
}

TEST(EpochPermutation, IsAPermutationAndReproducible) {
  for (int64_t n : {1, 2, 3, 10, 1000, 28273}) {
    const auto p = epoch_permutation(n, 42, 3);
    std::vector<int64_t> sorted = p;
    std::sort(sorted.begin(), sorted.end());
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(sorted[size_t(i)], i);
    EXPECT_EQ(p, epoch_permutation(n, 42, 3));
  }
  EXPECT_NE(epoch_permutation(1000, 42, 0), epoch_permutation(1000, 42, 1));
  EXPECT_NE(epoch_permutation(1000, 42, 0), epoch_permutation(1000, 43, 0));
  // Pinned values: the order must not change across platforms, compilers or releases.
  const std::vector<int64_t> p = epoch_permutation(10, 42, 0);
  const std::vector<int64_t> pinned = {4, 5, 6, 9, 1, 8, 0, 3, 2, 7};
  EXPECT_EQ(p, pinned);
}

TEST(BatchStream, CoverageEveryRowOncePerEpoch) {
  const Dataset d = synthetic(1000);
  BatchStreamOptions o;
  o.batch_size = 64;
  o.drop_last = false;
  o.seed = 7;
  BatchStream s(d, d.train_rows, o);
  EXPECT_EQ(s.batches_per_epoch(), 16);
  EXPECT_EQ(s.images_per_epoch(), 1000);
  const auto seen = consume(s, d, 3);
  ASSERT_EQ(seen.size(), 48u);
  std::vector<std::vector<int64_t>> orders(3);
  for (const Seen& b : seen) {
    EXPECT_EQ(b.rows.size(), b.index == 15 ? 1000u - 15 * 64 : 64u);
    orders[size_t(b.epoch)].insert(orders[size_t(b.epoch)].end(), b.rows.begin(), b.rows.end());
  }
  for (int e = 0; e < 3; ++e) {
    std::vector<int64_t> sorted = orders[size_t(e)];
    std::sort(sorted.begin(), sorted.end());
    for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(sorted[size_t(i)], i) << "epoch " << e;
    // The order is the documented permutation of the given rows.
    const auto perm = epoch_permutation(1000, 7, e);
    for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(orders[size_t(e)][size_t(i)], perm[size_t(i)]);
  }
  EXPECT_NE(orders[0], orders[1]);
  const EpochStats st = s.last_epoch_stats();
  EXPECT_EQ(st.epoch, 2);
  EXPECT_EQ(st.batches, 16);
  EXPECT_EQ(st.images, 1000);
}

TEST(BatchStream, DropLastGivesFullBatchesOfDistinctRows) {
  const Dataset d = synthetic(1000);
  BatchStreamOptions o;
  o.batch_size = 64;
  BatchStream s(d, d.train_rows, o);
  EXPECT_EQ(s.batches_per_epoch(), 1000 / 64);
  EXPECT_EQ(s.images_per_epoch(), 15 * 64);
  const auto seen = consume(s, d, 2);
  ASSERT_EQ(seen.size(), 30u);
  for (int e = 0; e < 2; ++e) {
    std::set<int64_t> rows;
    for (const Seen& b : seen) {
      if (b.epoch != e) continue;
      EXPECT_EQ(b.rows.size(), 64u);
      rows.insert(b.rows.begin(), b.rows.end());
    }
    EXPECT_EQ(rows.size(), 15u * 64);
  }
}

TEST(BatchStream, SubsetRowsAndNoShuffle) {
  const Dataset d = synthetic(300);
  std::vector<int64_t> rows;
  for (int64_t r = 5; r < 300; r += 3) rows.push_back(r);
  BatchStreamOptions o;
  o.batch_size = 10;
  o.shuffle = false;
  o.drop_last = false;
  BatchStream s(d, rows, o);
  const auto seen = consume(s, d, 2);
  std::vector<int64_t> order;
  for (const Seen& b : seen) {
    if (b.epoch == 1) order.insert(order.end(), b.rows.begin(), b.rows.end());
  }
  EXPECT_EQ(order, rows);
}

TEST(BatchStream, DeterministicAcrossRingSizesAndTiming) {
  const Dataset d = synthetic(500);
  BatchStreamOptions o;
  o.batch_size = 32;
  o.seed = 1234;
  o.augment = kernels::AugmentConfig::original_project();
  std::vector<Seen> a, b, c;
  {
    BatchStream s(d, d.train_rows, o);
    a = consume(s, d, 2);
  }
  {
    o.ring_slots = 2;
    BatchStream s(d, d.train_rows, o);
    b = consume(s, d, 2, std::chrono::microseconds(300));
  }
  {
    o.ring_slots = 7;
    o.producer_hook = [](int64_t, int64_t) { std::this_thread::sleep_for(std::chrono::microseconds(300)); };
    BatchStream s(d, d.train_rows, o);
    c = consume(s, d, 2);
  }
  expect_same(a, b);
  expect_same(a, c);
  // The draws are the documented function of (seed, epoch, row).
  for (const Seen& batch : a) {
    for (size_t k = 0; k < batch.rows.size(); ++k) {
      EXPECT_TRUE(same_draw(batch.draws[k], kernels::augment_draw(1234, uint64_t(batch.epoch),
                                                                 uint64_t(batch.rows[k]), o.augment)));
    }
  }
  // Another seed gives another order and other draws.
  o.seed = 1235;
  o.producer_hook = nullptr;
  BatchStream s(d, d.train_rows, o);
  const auto other = consume(s, d, 1);
  EXPECT_NE(other[0].rows, a[0].rows);
}

TEST(BatchStream, NoDrawsWithoutAugmentation) {
  const Dataset d = synthetic(100);
  BatchStreamOptions o;
  o.batch_size = 16;
  BatchStream s(d, d.train_rows, o);
  const Batch* b = s.next();
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->draws, nullptr);
  EXPECT_EQ(b->host_draws, nullptr);
}

TEST(BatchStream, FirstEpochForResume) {
  const Dataset d = synthetic(200);
  BatchStreamOptions o;
  o.batch_size = 50;
  o.seed = 9;
  o.augment = kernels::AugmentConfig::original_project();
  std::vector<Seen> full, resumed;
  {
    BatchStream s(d, d.train_rows, o);
    full = consume(s, d, 3);
  }
  o.first_epoch = 2;
  BatchStream s(d, d.train_rows, o);
  resumed = consume(s, d, 1);
  expect_same(std::vector<Seen>(full.begin() + 8, full.end()), resumed);
}

TEST(BatchStream, SlowConsumerFastProducer) {
  const Dataset d = synthetic(400);
  BatchStreamOptions o;
  o.batch_size = 20;
  o.ring_slots = 3;
  BatchStream s(d, d.train_rows, o);
  const auto seen = consume(s, d, 2, std::chrono::milliseconds(3));
  EXPECT_EQ(seen.size(), 40u);
  // The producer keeps ahead: after the first batch next() barely waits.
  EXPECT_LT(s.last_epoch_stats().stall_seconds, 0.02 * 20);
}

TEST(BatchStream, SlowProducerFastConsumerReportsStall) {
  const Dataset d = synthetic(400);
  BatchStreamOptions o;
  o.batch_size = 20;
  o.producer_hook = [](int64_t, int64_t) { std::this_thread::sleep_for(std::chrono::milliseconds(5)); };
  BatchStream s(d, d.train_rows, o);
  const auto seen = consume(s, d, 2);
  EXPECT_EQ(seen.size(), 40u);
  const EpochStats st = s.last_epoch_stats();
  EXPECT_EQ(st.batches, 20);
  // Most of the 20 x 5 ms producer time shows up as consumer stall.
  EXPECT_GT(st.stall_seconds, 0.05);
  EXPECT_GE(st.seconds, st.stall_seconds);
}

TEST(BatchStream, EarlyExitAndExceptionsShutDownCleanly) {
  const Dataset d = synthetic(1000);
  BatchStreamOptions o;
  o.batch_size = 8;
  o.ring_slots = 2;
  // Never consumed: the producer is blocked on a full ring when the stream is destroyed.
  { BatchStream s(d, d.train_rows, o); std::this_thread::sleep_for(std::chrono::milliseconds(20)); }
  // Destroyed mid-epoch while holding a batch.
  {
    BatchStream s(d, d.train_rows, o);
    ASSERT_NE(s.next(), nullptr);
    ASSERT_NE(s.next(), nullptr);
  }
  // The consumer throws while holding a batch.
  EXPECT_THROW(
      {
        BatchStream s(d, d.train_rows, o);
        const Batch* b = s.next();
        ASSERT_NE(b, nullptr);
        throw std::runtime_error("consumer failed");
      },
      std::runtime_error);
  // A slow producer is interrupted by destruction.
  {
    o.producer_hook = [](int64_t, int64_t) { std::this_thread::sleep_for(std::chrono::milliseconds(2)); };
    const auto t0 = std::chrono::steady_clock::now();
    { BatchStream s(d, d.train_rows, o); ASSERT_NE(s.next(), nullptr); }
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 1.0);
  }
}

TEST(BatchStream, ProducerErrorsReachTheConsumer) {
  const Dataset d = synthetic(100);
  BatchStreamOptions o;
  o.batch_size = 10;
  o.producer_hook = [](int64_t epoch, int64_t batch) {
    if (epoch == 0 && batch == 3) throw std::runtime_error("disk on fire");
  };
  BatchStream s(d, d.train_rows, o);
  int got = 0;
  try {
    while (s.next()) ++got;
    FAIL() << "expected the producer's exception";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "disk on fire");
  }
  EXPECT_LE(got, 3);
  EXPECT_THROW(s.next(), std::runtime_error);  // stays failed
}

TEST(BatchStream, ConstructionErrors) {
  const Dataset d = synthetic(10);
  BatchStreamOptions o;
  o.batch_size = 64;
  EXPECT_THROW(BatchStream(d, d.train_rows, o), fer::UserError);  // no full batch with drop_last
  o.drop_last = false;
  BatchStream ok(d, d.train_rows, o);
  EXPECT_EQ(ok.batches_per_epoch(), 1);
  EXPECT_THROW(BatchStream(d, {}, o), fer::UserError);
  o.batch_size = 0;
  EXPECT_THROW(BatchStream(d, d.train_rows, o), fer::UserError);
  o.batch_size = 4;
  o.ring_slots = 1;
  EXPECT_THROW(BatchStream(d, d.train_rows, o), fer::UserError);
  o.ring_slots = 2;
  EXPECT_THROW(BatchStream(d, {0, 10}, o), std::out_of_range);
}

TEST(BatchStream, CpuBackendBatchesLiveInHostMemory) {
  const Dataset d = synthetic(64);
  auto backend = make_cpu_backend();
  BatchStreamOptions o;
  o.batch_size = 16;
  o.augment = kernels::AugmentConfig::original_project();
  BatchStream s(d, d.train_rows, o, backend.get());
  EXPECT_FALSE(s.on_device());
  const Batch* b = s.next();
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->pixels, b->host_pixels);
  EXPECT_EQ(b->draws, b->host_draws);
  std::vector<float> x(size_t(b->size) * kPx);
  backend->images_to_float(b->size, 48, 48, b->pixels, b->draws, x.data());
  for (float v : x) ASSERT_TRUE(v >= 0.0f && v <= 1.0f);
}

}  // namespace
}  // namespace fer::loaders
