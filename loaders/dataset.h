#pragma once
// FER2013 in memory: uint8 48x48 images, labels after dropping/remapping classes, the usage
// (split) of every row, and how the data was loaded.
//
//   fer::loaders::DatasetOptions opt;
//   opt.drop_classes = {1};                        // the six-class configs drop "disgust"
//   fer::loaders::Dataset d = fer::loaders::load_dataset("fer2013.csv", opt);
//   d.train_rows / d.validation_rows -> row indices for the BatchStream (loaders/batch_stream.h)
//
// load_dataset takes either shape users have:
//   * a Kaggle CSV file (fer2013.csv "emotion,pixels,Usage", icml_face_data.csv
//     "emotion, Usage, pixels", train.csv "emotion,pixels", test.csv "pixels"); see csv_reader.h;
//   * an image-folder root ROOT/{train,test}/<class>/*.{png,jpg,...}; see image_folder.h.
// It keeps a binary cache of the parsed source (cache.h) and reuses it when it is current.
// Every problem with the user's data throws fer::UserError whose message starts with the file
// (and line, for CSV): "data/x.csv:17: expected 2304 pixels (48x48), found 2303".
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace fer::loaders {

// FER2013 emotion ids and their canonical names.
constexpr int kNumFerClasses = 7;
constexpr int kImageSize = 48;  // FER2013 images are 48x48 grayscale
constexpr uint8_t kNoLabel = 255;  // fer id of a row of an unlabeled CSV ("pixels" only)
// 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral.
const std::array<const char*, kNumFerClasses>& fer_class_names();
// A FER id from a number ("1") or a class name in either common spelling ("disgust",
// "disgusted", "Fearful"...; case-insensitive). -1 when it names no class.
int parse_fer_class(const std::string& text);

// Where a row came from. CSV files carry Training/PublicTest/PrivateTest; image folders carry
// train/ (training) and test/ (test, no public/private distinction).
enum class Usage : uint8_t { training = 0, public_test = 1, private_test = 2, test = 3 };
constexpr int kNumUsages = 4;
const char* usage_name(Usage u);  // "Training", "PublicTest", "PrivateTest", "test"
// The inverse, case-insensitive (for configs): false when `text` names no usage.
bool parse_usage_name(const std::string& text, Usage* out);

enum class SourceFormat : uint8_t { csv = 1, image_folders = 2 };

enum class ClassOrder : uint8_t {
  fer_id,        // kept classes in FER id order: angry, fear, happy, sad, surprise, neutral
  alphabetical,  // Keras flow_from_directory order: angry, fear, happy, neutral, sad, surprise
};

enum class CacheMode : uint8_t {
  read_write,  // use a current cache, (re)build it otherwise (default)
  rebuild,     // ignore any existing cache, parse the source, write a fresh cache
  off,         // neither read nor write a cache
};

enum class CacheStatus : uint8_t {
  disabled,         // CacheMode::off
  hit,              // loaded from a current, intact cache
  created,          // no cache existed; parsed the source and wrote one
  rebuilt_stale,    // the source changed since the cache was written; rewritten
  rebuilt_corrupt,  // the cache failed its checks (truncated, bad checksum...); rewritten
  rebuilt_forced,   // CacheMode::rebuild
  write_failed,     // parsed the source, but the cache could not be written (see message)
};
const char* cache_status_name(CacheStatus s);

struct DatasetOptions {
  // FER ids whose rows are removed; the remaining classes get contiguous ids 0..k-1.
  std::vector<int> drop_classes;
  ClassOrder class_order = ClassOrder::fer_id;
  // Which usages form the training and the validation split (the original project trained on
  // Training and validated on PublicTest + PrivateTest). A usage may not be in both.
  std::vector<Usage> train_usages{Usage::training};
  std::vector<Usage> validation_usages{Usage::public_test, Usage::private_test, Usage::test};
  CacheMode cache = CacheMode::read_write;
  // Empty: the cache sits beside the source (PATH.fercache; for a folder ROOT.fercache).
  // Otherwise the cache file goes into this folder (created if needed).
  std::string cache_dir;
  int threads = 0;  // parser/decoder threads; 0 = hardware concurrency
};

struct LoadReport {
  CacheStatus cache_status = CacheStatus::disabled;
  std::string cache_path;
  std::string cache_message;   // why the cache was rebuilt or not written; empty otherwise
  double seconds = 0.0;        // whole load_dataset call
  double parse_seconds = 0.0;  // parsing/decoding the source (0 on a cache hit)
};

struct Dataset {
  std::string source;                 // the path given to load_dataset
  SourceFormat format = SourceFormat::csv;
  std::string layout;                 // "emotion,pixels,Usage" / "train+test class folders"
  int height = kImageSize, width = kImageSize;
  bool labeled = true;                // false for a "pixels"-only CSV

  std::vector<uint8_t> pixels;        // [size(), height, width], row-major, contiguous
  std::vector<int32_t> labels;        // class id 0..num_classes()-1; -1 when unlabeled
  std::vector<uint8_t> fer_ids;       // original FER2013 id of each row; kNoLabel when unlabeled
  std::vector<Usage> usage;           // per row

  std::vector<std::string> class_names;  // class id -> FER name ("angry", "fear", ...)
  std::vector<int> class_fer_ids;        // class id -> FER id
  std::vector<int64_t> train_rows;       // rows whose usage is a train usage, ascending
  std::vector<int64_t> validation_rows;  // rows whose usage is a validation usage, ascending
  int64_t dropped_rows = 0;              // rows removed by drop_classes

  LoadReport report;

  int64_t size() const { return int64_t(usage.size()); }
  int num_classes() const { return int(class_names.size()); }
  int64_t image_bytes() const { return int64_t(height) * width; }
  const uint8_t* image(int64_t row) const { return pixels.data() + row * image_bytes(); }
  // Number of rows of each class among `rows` (unlabeled rows are not counted).
  std::vector<int64_t> class_counts(const std::vector<int64_t>& rows) const;
  // Rows with the given usage, ascending.
  std::vector<int64_t> rows_with_usage(Usage u) const;
  // Throws UserError naming the source when the data has no labels ("training needs labels").
  void require_labels(const std::string& purpose) const;
};

// Loads a CSV file or an image-folder root (auto-detected), through the cache, and applies the
// options. Throws fer::UserError for anything wrong with the data or the options.
Dataset load_dataset(const std::string& path, const DatasetOptions& options = {});

// ---- lower level, shared by the readers and the cache ----

// A source as read: every row with its original FER id, before drop/remap.
struct RawData {
  SourceFormat format = SourceFormat::csv;
  std::string layout;
  int height = kImageSize, width = kImageSize;
  bool labeled = true;
  std::vector<uint8_t> pixels;   // [rows, height, width]
  std::vector<uint8_t> fer_ids;  // kNoLabel when unlabeled
  std::vector<Usage> usage;
  int64_t rows() const { return int64_t(usage.size()); }
};

// Applies drop/remap/split options to raw rows (moves the pixels when nothing is dropped).
Dataset make_dataset(RawData raw, const std::string& source, const DatasetOptions& options);

// Reads the source without any cache.
RawData read_source(const std::string& path, int threads);

}  // namespace fer::loaders
