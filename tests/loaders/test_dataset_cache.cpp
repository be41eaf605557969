// Dataset options (drop/remap/splits) and the binary cache (round trip, stale, corrupt, atomic).
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "loaders/cache.h"
#include "loaders/csv_reader.h"
#include "loaders/dataset.h"
#include "loaders/image_io.h"
#include "tests/loaders/test_util.h"

namespace fer::loaders {
namespace {

using testing::expect_user_error;
using testing::pixel_text;
using testing::TempDir;
using testing::test_image;

constexpr int kPx = 2304;

// Rows with FER ids 0..6 (two of each), usages cycling Training/PublicTest/PrivateTest.
std::string seven_class_csv() {
  std::string t = "emotion,pixels,Usage\n";
  const char* usages[] = {"Training", "PublicTest", "PrivateTest"};
  for (int i = 0; i < 14; ++i) {
    const auto px = test_image(i);
    t += std::to_string(i % 7) + "," + pixel_text(px.data()) + "," + usages[i % 3] + "\n";
  }
  return t;
}

RawData seven_class_raw() {
  const std::string t = seven_class_csv();
  return parse_kaggle_csv(t.data(), t.size(), "seven.csv");
}

TEST(Dataset, DropAndRemapInFerOrder) {
  DatasetOptions opt;
  opt.drop_classes = {1};
  const Dataset d = make_dataset(seven_class_raw(), "seven.csv", opt);
  EXPECT_EQ(d.num_classes(), 6);
  EXPECT_EQ(d.class_names, (std::vector<std::string>{"angry", "fear", "happy", "sad", "surprise", "neutral"}));
  EXPECT_EQ(d.class_fer_ids, (std::vector<int>{0, 2, 3, 4, 5, 6}));
  EXPECT_EQ(d.size(), 12);
  EXPECT_EQ(d.dropped_rows, 2);
  // Kept rows keep their pixels, in order; labels are the remapped ids.
  const int32_t remap[7] = {0, -1, 1, 2, 3, 4, 5};
  int64_t out = 0;
  for (int i = 0; i < 14; ++i) {
    if (i % 7 == 1) continue;
    EXPECT_EQ(d.fer_ids[size_t(out)], i % 7);
    EXPECT_EQ(d.labels[size_t(out)], remap[i % 7]);
    EXPECT_EQ(0, std::memcmp(d.image(out), test_image(i).data(), kPx)) << i;
    ++out;
  }
}

TEST(Dataset, AlphabeticalOrderAndSplits) {
  DatasetOptions opt;
  opt.drop_classes = {1};
  opt.class_order = ClassOrder::alphabetical;
  const Dataset d = make_dataset(seven_class_raw(), "seven.csv", opt);
  EXPECT_EQ(d.class_names, (std::vector<std::string>{"angry", "fear", "happy", "neutral", "sad", "surprise"}));
  for (int64_t i = 0; i < d.size(); ++i) {
    EXPECT_EQ(d.class_names[size_t(d.labels[size_t(i)])], fer_class_names()[d.fer_ids[size_t(i)]]);
  }
  // Training rows train; PublicTest + PrivateTest validate.
  for (int64_t r : d.train_rows) EXPECT_EQ(d.usage[size_t(r)], Usage::training);
  for (int64_t r : d.validation_rows) EXPECT_NE(d.usage[size_t(r)], Usage::training);
  EXPECT_EQ(d.train_rows.size() + d.validation_rows.size(), size_t(d.size()));

  DatasetOptions only_public;
  only_public.validation_usages = {Usage::public_test};
  const Dataset p = make_dataset(seven_class_raw(), "seven.csv", only_public);
  for (int64_t r : p.validation_rows) EXPECT_EQ(p.usage[size_t(r)], Usage::public_test);
  EXPECT_EQ(p.class_counts(p.train_rows).size(), 7u);
}

TEST(Dataset, UsageNames) {
  Usage u;
  ASSERT_TRUE(parse_usage_name("publictest", &u));
  EXPECT_EQ(u, Usage::public_test);
  ASSERT_TRUE(parse_usage_name("Training", &u));
  EXPECT_EQ(u, Usage::training);
  ASSERT_TRUE(parse_usage_name("test", &u));
  EXPECT_EQ(u, Usage::test);
  EXPECT_FALSE(parse_usage_name("validation", &u));
  for (int i = 0; i < kNumUsages; ++i) {
    ASSERT_TRUE(parse_usage_name(usage_name(Usage(i)), &u));
    EXPECT_EQ(int(u), i);
  }
}

TEST(Dataset, OptionErrors) {
  DatasetOptions bad;
  bad.drop_classes = {7};
  expect_user_error([&] { make_dataset(seven_class_raw(), "s", bad); }, {"drop_classes: 7"});
  DatasetOptions all;
  all.drop_classes = {0, 1, 2, 3, 4, 5, 6};
  expect_user_error([&] { make_dataset(seven_class_raw(), "s", all); }, {"removes every class"});
  DatasetOptions both;
  both.train_usages = {Usage::training, Usage::public_test};
  expect_user_error([&] { make_dataset(seven_class_raw(), "s", both); }, {"PublicTest", "both training and validation"});
}

// ---- cache ----

struct CacheFixture : ::testing::Test {
  TempDir dir;
  std::string csv;
  void SetUp() override {
    csv = dir / "fer.csv";
    testing::write_file(csv, testing::read_file(testing::sample_csv_path()));
  }
  Dataset load(CacheMode mode = CacheMode::read_write, const std::string& cache_dir = "") {
    DatasetOptions o;
    o.drop_classes = {1};
    o.cache = mode;
    o.cache_dir = cache_dir;
    return load_dataset(csv, o);
  }
};

void expect_same(const Dataset& a, const Dataset& b) {
  EXPECT_EQ(a.pixels, b.pixels);
  EXPECT_EQ(a.labels, b.labels);
  EXPECT_EQ(a.fer_ids, b.fer_ids);
  EXPECT_EQ(a.usage, b.usage);
  EXPECT_EQ(a.train_rows, b.train_rows);
  EXPECT_EQ(a.validation_rows, b.validation_rows);
  EXPECT_EQ(a.class_names, b.class_names);
  EXPECT_EQ(a.layout, b.layout);
}

TEST_F(CacheFixture, RoundTrip) {
  const Dataset first = load();
  EXPECT_EQ(first.report.cache_status, CacheStatus::created);
  EXPECT_EQ(first.report.cache_path, csv + ".fercache");
  EXPECT_TRUE(std::filesystem::exists(csv + ".fercache"));
  const Dataset second = load();
  EXPECT_EQ(second.report.cache_status, CacheStatus::hit) << second.report.cache_message;
  EXPECT_EQ(second.report.parse_seconds, 0.0);
  expect_same(first, second);
  const Dataset uncached = load(CacheMode::off);
  EXPECT_EQ(uncached.report.cache_status, CacheStatus::disabled);
  expect_same(first, uncached);
  // One cache serves every class configuration.
  DatasetOptions seven;
  const Dataset all = load_dataset(csv, seven);
  EXPECT_EQ(all.report.cache_status, CacheStatus::hit);
  EXPECT_EQ(all.num_classes(), 7);
  // No temporary files are left behind.
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    ++files;
    EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << e.path();
  }
  EXPECT_EQ(files, 2);
  const Dataset forced = load(CacheMode::rebuild);
  EXPECT_EQ(forced.report.cache_status, CacheStatus::rebuilt_forced);
  expect_same(first, forced);
}

TEST_F(CacheFixture, StaleWhenTheSourceChanges) {
  const Dataset first = load();
  ASSERT_EQ(first.report.cache_status, CacheStatus::created);
  // Same size, different content and mtime: change the first row's emotion digit.
  std::string text = testing::read_file(csv);
  char& digit = text[text.find('\n') + 1];
  digit = digit == '0' ? '2' : '0';
  testing::write_file(csv, text);
  const Dataset second = load();
  EXPECT_EQ(second.report.cache_status, CacheStatus::rebuilt_stale);
  EXPECT_NE(second.report.cache_message.find("source changed"), std::string::npos);
  EXPECT_NE(first.fer_ids, second.fer_ids);
  EXPECT_EQ(load().report.cache_status, CacheStatus::hit);
  // Only the mtime changes: still stale (the key includes it), rebuilt to the same data.
  struct timespec ts[2] = {{1000000000, 0}, {1000000000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, csv.c_str(), ts, 0), 0);
  const Dataset third = load();
  EXPECT_EQ(third.report.cache_status, CacheStatus::rebuilt_stale);
  expect_same(second, third);
}

TEST_F(CacheFixture, StaleEvenWithSameSizeAndMtime) {
  load();
  struct stat st {};
  ASSERT_EQ(::stat(csv.c_str(), &st), 0);
  std::string text = testing::read_file(csv);
  char& digit = text[text.find('\n') + 1];
  digit = digit == '0' ? '2' : '0';
  testing::write_file(csv, text);
  const struct timespec ts[2] = {st.st_atim, st.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, csv.c_str(), ts, 0), 0);
  EXPECT_EQ(load().report.cache_status, CacheStatus::rebuilt_stale);  // caught by the content hash
}

TEST_F(CacheFixture, CorruptCachesAreRebuilt) {
  const Dataset good = load();
  const std::string cache = csv + ".fercache";
  const std::string bytes = testing::read_file(cache);
  struct Damage {
    const char* name;
    std::string content;
    const char* why;
  };
  std::string flipped = bytes;
  flipped[bytes.size() - 1000] ^= 0x40;  // a pixel
  std::string flipped_label = bytes;
  flipped_label[192 + 3] ^= 0x01;  // a FER id right after the header
  std::string bad_header = bytes;
  bad_header[40] ^= 0x01;
  const std::vector<Damage> damages = {
      {"payload bit flip", flipped, "checksum"},
      {"label bit flip", flipped_label, "checksum"},
      {"truncated", bytes.substr(0, bytes.size() - 1), "size"},
      {"header only", bytes.substr(0, 192), "size"},
      {"shorter than header", bytes.substr(0, 100), "header"},
      {"empty", "", "header"},
      {"header damaged", bad_header, "bad header"},
      {"not a cache", std::string(4096, 'x'), "bad header"},
      {"appended garbage", bytes + "xyz", "size"},
  };
  for (const Damage& d : damages) {
    SCOPED_TRACE(d.name);
    testing::write_file(cache, d.content);
    const Dataset again = load();
    EXPECT_EQ(again.report.cache_status, CacheStatus::rebuilt_corrupt);
    EXPECT_NE(again.report.cache_message.find(d.why), std::string::npos) << again.report.cache_message;
    expect_same(good, again);
    EXPECT_EQ(testing::read_file(cache), bytes);  // rewritten intact
  }
}

TEST_F(CacheFixture, CacheDirAndUnwritableLocation) {
  const std::string cdir = dir / "caches/nested";
  const Dataset a = load(CacheMode::read_write, cdir);
  EXPECT_EQ(a.report.cache_status, CacheStatus::created);
  EXPECT_EQ(a.report.cache_path.rfind(cdir + "/fer.csv-", 0), 0u) << a.report.cache_path;
  EXPECT_FALSE(std::filesystem::exists(csv + ".fercache"));
  EXPECT_EQ(load(CacheMode::read_write, cdir).report.cache_status, CacheStatus::hit);
  // A cache folder that cannot exist (below a regular file): the data still loads.
  const Dataset b = load(CacheMode::read_write, csv + "/sub");
  EXPECT_EQ(b.report.cache_status, CacheStatus::write_failed);
  EXPECT_FALSE(b.report.cache_message.empty());
  expect_same(a, b);
}

TEST(Cache, ImageFolderCacheIsStaleWhenAnImageChanges) {
  TempDir dir;
  const std::string root = dir / "imgs";
  auto put = [&](const std::string& rel, int k) {
    std::filesystem::create_directories(std::filesystem::path(root + "/" + rel).parent_path());
    const auto px = test_image(k);
    write_png(root + "/" + rel, 48, 48, 1, px.data());
  };
  put("train/happy/a.png", 0);
  put("train/sad/a.png", 1);
  put("test/happy/a.png", 2);
  const Dataset first = load_dataset(root);
  EXPECT_EQ(first.report.cache_status, CacheStatus::created);
  EXPECT_EQ(first.report.cache_path, root + ".fercache");
  EXPECT_EQ(load_dataset(root + "/").report.cache_status, CacheStatus::hit);
  // Replace one image (same name): stale.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  put("train/sad/a.png", 3);
  const Dataset second = load_dataset(root);
  EXPECT_EQ(second.report.cache_status, CacheStatus::rebuilt_stale);
  EXPECT_EQ(0, std::memcmp(second.image(1), test_image(3).data(), kPx));
  // Add an image: stale.
  put("test/sad/b.png", 4);
  const Dataset third = load_dataset(root);
  EXPECT_EQ(third.report.cache_status, CacheStatus::rebuilt_stale);
  EXPECT_EQ(third.size(), 4);
  EXPECT_EQ(load_dataset(root).report.cache_status, CacheStatus::hit);
}

TEST(Cache, ReadCacheReportsMissing) {
  TempDir dir;
  RawData raw;
  std::string why;
  EXPECT_EQ(read_cache(dir / "none.fercache", CacheKey{}, &raw, &why), CacheRead::missing);
}

}  // namespace
}  // namespace fer::loaders
