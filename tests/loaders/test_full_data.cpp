// The full six-class FER2013 set, in both shapes users have. Skipped (with the reason) when the
// data cannot be found. Where it looks, in order:
//   CSV:     $FER2013_CSV; ../shared/data/fer2013.csv beside the repository; otherwise the pack
//            ../shared/data/fer2013-6class.ferpack is unpacked once with its script (python3)
//            into $FER_TEST_DATA_DIR (default: $TMPDIR or /tmp, folder fer_gpu_full_data/<pack size>)
//            and reused by later runs.
//   folders: $FER2013_DIR; ../shared/data/fer2013-images; otherwise unpacked the same way.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <numeric>

#include "loaders/dataset.h"
#include "tests/loaders/test_util.h"

namespace fs = std::filesystem;

namespace fer::loaders {
namespace {

std::string shared_data() { return std::string(FER_SOURCE_DIR) + "/../shared/data"; }

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// Unpacks the pack into DIR/<what> once (atomically: a temporary name, then rename).
// Returns "" and sets *why when it cannot.
std::string unpack(const std::string& what, std::string* why) {
  const std::string pack = shared_data() + "/fer2013-6class.ferpack";
  const std::string script = shared_data() + "/unpack_fer2013.py";
  if (!fs::exists(pack) || !fs::exists(script)) {
    *why = "no FER2013 data. To run these tests: FER2013_CSV=/path/to/fer2013.csv (Kaggle's file) "
           "FER2013_DIR=/path/to/folders (one subfolder per class; optional) ctest --test-dir build -R FullData; "
           "or put the pack at " + pack + " (unpacked once with python3)";
    return "";
  }
  if (std::system("python3 -c 'pass' >/dev/null 2>&1") != 0) {
    *why = "the pack " + pack + " needs python3 to unpack; or run FER2013_CSV=/path/to/fer2013.csv "
           "ctest --test-dir build -R FullData";
    return "";
  }
  std::string base = env("FER_TEST_DATA_DIR");
  if (base.empty()) base = (env("TMPDIR").empty() ? std::string("/tmp") : env("TMPDIR")) + "/fer_gpu_full_data";
  base += "/" + std::to_string(fs::file_size(pack));  // a new pack unpacks afresh
  fs::create_directories(base);
  const std::string target = base + "/" + (what == "csv" ? "fer2013.csv" : "fer2013-images");
  if (fs::exists(target)) return target;
  const std::string tmp = target + ".partial." + std::to_string(::getpid());
  const std::string cmd = "python3 '" + script + "' '" + pack + "' " + (what == "csv" ? "--csv '" : "--folders '") +
                          tmp + "' >/dev/null";
  std::fprintf(stderr, "[ unpack   ] %s -> %s (once)\n", pack.c_str(), target.c_str());
  if (std::system(cmd.c_str()) != 0) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    *why = "unpacking failed: " + cmd;
    return "";
  }
  std::error_code ec;
  fs::rename(tmp, target, ec);  // another test process may have won the race: use its copy
  if (ec) fs::remove_all(tmp, ec);
  return fs::exists(target) ? target : "";
}

std::string find_csv(std::string* why) {
  if (!env("FER2013_CSV").empty()) return env("FER2013_CSV");
  if (fs::exists(shared_data() + "/fer2013.csv")) return shared_data() + "/fer2013.csv";
  return unpack("csv", why);
}

std::string find_dir(std::string* why) {
  if (!env("FER2013_DIR").empty()) return env("FER2013_DIR");
  if (fs::exists(shared_data() + "/fer2013-images")) return shared_data() + "/fer2013-images";
  return unpack("folders", why);
}

// Per README: classes angry, fear, happy, sad, surprise, neutral (disgust dropped).
const std::vector<int64_t> kTrain = {3995, 4097, 7215, 4830, 3171, 4965};
const std::vector<int64_t> kPublic = {467, 496, 895, 653, 415, 607};
const std::vector<int64_t> kPrivate = {491, 528, 879, 594, 416, 626};

DatasetOptions six_class(const std::string& cache_dir) {
  DatasetOptions o;
  o.drop_classes = {1};
  o.cache_dir = cache_dir;  // never write beside shared data
  return o;
}

void expect_counts(const Dataset& d) {
  EXPECT_EQ(d.size(), 35340);
  EXPECT_EQ(d.train_rows.size(), 28273u);
  EXPECT_EQ(d.validation_rows.size(), 7067u);
  EXPECT_EQ(d.class_counts(d.train_rows), kTrain);
  std::vector<int64_t> val(6);
  for (int c = 0; c < 6; ++c) val[size_t(c)] = kPublic[size_t(c)] + kPrivate[size_t(c)];
  EXPECT_EQ(d.class_counts(d.validation_rows), val);
}

TEST(FullData, CsvCountsPixelsAndCache) {
  std::string why;
  const std::string csv = find_csv(&why);
  if (csv.empty()) GTEST_SKIP() << why;
  testing::TempDir cache;
  const Dataset d = load_dataset(csv, six_class(cache.path()));
  std::fprintf(stderr, "[ timing   ] %s: parse %.3f s, load %.3f s, cache %s\n", csv.c_str(),
               d.report.parse_seconds, d.report.seconds, cache_status_name(d.report.cache_status));
  expect_counts(d);
  EXPECT_EQ(d.class_counts(d.rows_with_usage(Usage::public_test)), kPublic);
  EXPECT_EQ(d.class_counts(d.rows_with_usage(Usage::private_test)), kPrivate);
  // The first row of fer2013.csv as published.
  const uint8_t first[12] = {70, 80, 82, 72, 58, 58, 60, 63, 54, 58, 60, 48};
  EXPECT_EQ(0, std::memcmp(d.image(0), first, 12));
  EXPECT_EQ(d.fer_ids[0], 0);

  const Dataset again = load_dataset(csv, six_class(cache.path()));
  std::fprintf(stderr, "[ timing   ] cached load %.3f s\n", again.report.seconds);
  EXPECT_EQ(again.report.cache_status, CacheStatus::hit);
  EXPECT_EQ(again.pixels, d.pixels);
  EXPECT_EQ(again.labels, d.labels);
  EXPECT_EQ(again.usage, d.usage);
}

TEST(FullData, FoldersMatchCsv) {
  std::string why;
  const std::string dir = find_dir(&why);
  if (dir.empty()) GTEST_SKIP() << why;
  testing::TempDir cache;
  const Dataset f = load_dataset(dir, six_class(cache.path()));
  std::fprintf(stderr, "[ timing   ] %s: decode %.3f s, load %.3f s\n", dir.c_str(), f.report.parse_seconds,
               f.report.seconds);
  expect_counts(f);
  const std::string csv = find_csv(&why);
  if (csv.empty()) return;
  DatasetOptions o = six_class("");
  o.cache = CacheMode::off;
  const Dataset c = load_dataset(csv, o);
  // The folders hold the CSV's images grouped by (train/test, class) in CSV order.
  std::vector<int64_t> order(size_t(c.size()));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    const int sa = c.usage[size_t(a)] != Usage::training, sb = c.usage[size_t(b)] != Usage::training;
    return sa != sb ? sa < sb : c.fer_ids[size_t(a)] < c.fer_ids[size_t(b)];
  });
  int64_t mismatches = 0;
  for (int64_t i = 0; i < f.size(); ++i) {
    const int64_t j = order[size_t(i)];
    mismatches += (f.fer_ids[size_t(i)] != c.fer_ids[size_t(j)] ||
                   std::memcmp(f.image(i), c.image(j), size_t(f.image_bytes())) != 0);
  }
  EXPECT_EQ(mismatches, 0);
}

}  // namespace
}  // namespace fer::loaders
