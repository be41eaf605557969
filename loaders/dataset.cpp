#include "loaders/dataset.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "engine/error.h"
#include "loaders/cache.h"
#include "loaders/csv_reader.h"
#include "loaders/image_folder.h"
#include "loaders/text_util.h"

namespace fer::loaders {

const std::array<const char*, kNumFerClasses>& fer_class_names() {
  static const std::array<const char*, kNumFerClasses> names = {
      "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"};
  return names;
}

int parse_fer_class(const std::string& text) {
  const std::string t = to_lower(text);
  if (t.size() == 1 && t[0] >= '0' && t[0] < char('0' + kNumFerClasses)) return t[0] - '0';
  static const struct {
    const char* name;
    int id;
  } names[] = {{"angry", 0},    {"anger", 0},     {"disgust", 1},  {"disgusted", 1},
               {"fear", 2},     {"fearful", 2},   {"happy", 3},    {"happiness", 3},
               {"sad", 4},      {"sadness", 4},   {"surprise", 5}, {"surprised", 5},
               {"neutral", 6}};
  for (const auto& n : names) {
    if (t == n.name) return n.id;
  }
  return -1;
}

const char* usage_name(Usage u) {
  switch (u) {
    case Usage::training: return "Training";
    case Usage::public_test: return "PublicTest";
    case Usage::private_test: return "PrivateTest";
    case Usage::test: return "test";
  }
  return "?";
}

bool parse_usage_name(const std::string& text, Usage* out) {
  for (int u = 0; u < kNumUsages; ++u) {
    if (equals_ignore_case(text, usage_name(Usage(u)))) {
      *out = Usage(u);
      return true;
    }
  }
  return false;
}

const char* cache_status_name(CacheStatus s) {
  switch (s) {
    case CacheStatus::disabled: return "disabled";
    case CacheStatus::hit: return "hit";
    case CacheStatus::created: return "created";
    case CacheStatus::rebuilt_stale: return "rebuilt (stale)";
    case CacheStatus::rebuilt_corrupt: return "rebuilt (corrupt)";
    case CacheStatus::rebuilt_forced: return "rebuilt (forced)";
    case CacheStatus::write_failed: return "not written";
  }
  return "?";
}

std::vector<int64_t> Dataset::class_counts(const std::vector<int64_t>& rows) const {
  std::vector<int64_t> counts(size_t(num_classes()), 0);
  for (const int64_t r : rows) {
    const int32_t l = labels[size_t(r)];
    if (l >= 0 && l < num_classes()) ++counts[size_t(l)];
  }
  return counts;
}

std::vector<int64_t> Dataset::rows_with_usage(Usage u) const {
  std::vector<int64_t> rows;
  for (int64_t i = 0; i < size(); ++i) {
    if (usage[size_t(i)] == u) rows.push_back(i);
  }
  return rows;
}

void Dataset::require_labels(const std::string& purpose) const {
  if (!labeled) {
    throw UserError(source + ": has no emotion column (columns " + layout + "); " + purpose +
                    " needs labelled data");
  }
}

Dataset make_dataset(RawData raw, const std::string& source, const DatasetOptions& options) {
  bool drop[kNumFerClasses] = {};
  for (const int id : options.drop_classes) {
    if (id < 0 || id >= kNumFerClasses) {
      throw UserError("drop_classes: " + std::to_string(id) +
                      " is not a FER2013 class id (0 angry .. 6 neutral)");
    }
    drop[id] = true;
  }
  bool in_train[kNumUsages] = {}, in_val[kNumUsages] = {};
  for (const Usage u : options.train_usages) in_train[int(u)] = true;
  for (const Usage u : options.validation_usages) in_val[int(u)] = true;
  for (int u = 0; u < kNumUsages; ++u) {
    if (in_train[u] && in_val[u]) {
      throw UserError(std::string("usage ") + usage_name(Usage(u)) +
                      " is listed for both training and validation");
    }
  }

  Dataset d;
  d.source = source;
  d.format = raw.format;
  d.layout = raw.layout;
  d.height = raw.height;
  d.width = raw.width;
  d.labeled = raw.labeled;

  // Classes kept, in the requested order.
  std::vector<int> kept;
  for (int id = 0; id < kNumFerClasses; ++id) {
    if (!drop[id]) kept.push_back(id);
  }
  if (kept.empty()) throw UserError("drop_classes removes every class");
  if (options.class_order == ClassOrder::alphabetical) {
    std::sort(kept.begin(), kept.end(), [](int a, int b) {
      return std::strcmp(fer_class_names()[size_t(a)], fer_class_names()[size_t(b)]) < 0;
    });
  }
  int32_t remap[kNumFerClasses];
  std::fill(std::begin(remap), std::end(remap), -1);
  for (size_t i = 0; i < kept.size(); ++i) {
    remap[kept[i]] = int32_t(i);
    d.class_names.emplace_back(fer_class_names()[size_t(kept[i])]);
    d.class_fer_ids.push_back(kept[i]);
  }

  // Rows kept (unlabeled rows are always kept: there is nothing to drop them by).
  const int64_t n = raw.rows();
  const size_t img = size_t(raw.height) * size_t(raw.width);
  int64_t keep_count = 0;
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t id = raw.fer_ids[size_t(i)];
    keep_count += (id == kNoLabel || !drop[id]) ? 1 : 0;
  }
  d.dropped_rows = n - keep_count;
  if (keep_count == n) {
    d.pixels = std::move(raw.pixels);
    d.fer_ids = std::move(raw.fer_ids);
    d.usage = std::move(raw.usage);
  } else {
    d.pixels.resize(size_t(keep_count) * img);
    d.fer_ids.reserve(size_t(keep_count));
    d.usage.reserve(size_t(keep_count));
    int64_t out = 0;
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t id = raw.fer_ids[size_t(i)];
      if (id != kNoLabel && drop[id]) continue;
      std::memcpy(d.pixels.data() + size_t(out) * img, raw.pixels.data() + size_t(i) * img, img);
      d.fer_ids.push_back(id);
      d.usage.push_back(raw.usage[size_t(i)]);
      ++out;
    }
    raw = RawData{};
  }
  d.labels.resize(d.fer_ids.size());
  for (size_t i = 0; i < d.fer_ids.size(); ++i) {
    d.labels[i] = d.fer_ids[i] == kNoLabel ? -1 : remap[d.fer_ids[i]];
  }
  for (int64_t i = 0; i < d.size(); ++i) {
    const int u = int(d.usage[size_t(i)]);
    if (in_train[u]) d.train_rows.push_back(i);
    if (in_val[u]) d.validation_rows.push_back(i);
  }
  return d;
}

namespace {

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

RawData read_source(const std::string& path, int threads) {
  if (is_directory(path)) return read_image_folders(path, threads);
  if (!exists(path)) throw UserError(path + ": no such file or folder");
  return read_kaggle_csv(path, threads);
}

Dataset load_dataset(const std::string& path, const DatasetOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  if (path.empty()) throw UserError("data path is empty");
  if (!exists(path)) throw UserError(path + ": no such file or folder");
  const bool folder = is_directory(path);

  // The key is taken before parsing: a source edited while we read it leaves a stale cache.
  CacheKey key;
  FolderListing listing;
  if (folder) {
    listing = list_image_folders(path);
    key.format = SourceFormat::image_folders;
    key.source_size = listing.total_bytes;
    key.source_mtime_ns = listing.newest_mtime_ns;
    key.fingerprint = listing.fingerprint;
  } else {
    key = csv_cache_key(path);
  }

  LoadReport report;
  RawData raw;
  bool have = false;
  if (options.cache != CacheMode::off) {
    report.cache_path = cache_path_for(path, options.cache_dir);
    if (options.cache == CacheMode::read_write) {
      std::string why;
      switch (read_cache(report.cache_path, key, &raw, &why)) {
        case CacheRead::ok:
          have = true;
          report.cache_status = CacheStatus::hit;
          break;
        case CacheRead::missing:
          report.cache_status = CacheStatus::created;
          break;
        case CacheRead::stale:
          report.cache_status = CacheStatus::rebuilt_stale;
          report.cache_message = why;
          break;
        case CacheRead::corrupt:
          report.cache_status = CacheStatus::rebuilt_corrupt;
          report.cache_message = why;
          break;
      }
    } else {
      report.cache_status = CacheStatus::rebuilt_forced;
    }
  }
  if (!have) {
    const auto tp = std::chrono::steady_clock::now();
    raw = folder ? decode_image_folders(listing, options.threads)
                 : read_kaggle_csv(path, options.threads);
    report.parse_seconds = seconds_since(tp);
    if (options.cache != CacheMode::off) {
      std::string why;
      if (!write_cache(report.cache_path, key, raw, &why)) {
        report.cache_status = CacheStatus::write_failed;
        report.cache_message = why;
      }
    }
  }
  Dataset d = make_dataset(std::move(raw), path, options);
  report.seconds = seconds_since(t0);
  d.report = report;
  return d;
}

}  // namespace fer::loaders
