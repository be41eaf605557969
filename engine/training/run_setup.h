#pragma once
// What `fer_gpu train/eval/predict` decide before touching a backend: which data to read (the
// config's, the command line's, or the bundled sample), the loader options a config implies, the
// device, and the resolved config text (the user's file with command-line overrides written into
// it, comments and layout kept) that run directories and checkpoints carry.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "loaders/dataset.h"
#include "models/run_config.h"

namespace fer::training {

// ---- data ----
struct DataChoice {
  std::string path;           // what to load
  bool is_sample = false;     // the bundled sample stands in for a missing FER2013
  std::string missing_path;   // the configured path that was not found (is_sample only)
};

// The bundled sample CSV (data/sample/fer2013_sample.csv, looked up from the working directory
// and then the source tree fer_gpu was built from); empty when neither has it.
std::string bundled_sample_path();

// cli_path (--data) must exist; otherwise the config's path is used when it exists and the
// sample when it does not. Throws UserError when nothing usable is found.
DataChoice choose_data(const std::string& config_data_path, const std::optional<std::string>& cli_path,
                       const std::string& config_file);

// The multi-line banner shown when training on the sample.
std::string sample_banner(const DataChoice& choice, int64_t rows);

// Loader options from the config: drop_classes, train/validation usages (an image-folder root's
// test/ split counts as validation when PublicTest or PrivateTest is a validation usage).
loaders::DatasetOptions dataset_options(const models::RunConfig& config, const std::string& data_path);

// The binary cache pays off for large sources (fer2013.csv: 296 MB); a small file (the bundled
// sample, a handful of faces to predict) is parsed directly and leaves no cache file beside it.
loaders::CacheMode cache_mode_for(const std::string& data_path);

// The FER names of the classes a config keeps, in class-id order ("angry", "fear", ...).
std::vector<std::string> class_names_of(const models::RunConfig& config);

// ---- device ----
// "cpu", "cuda" or empty (auto: cuda when a device answers, else cpu). *notice receives the
// one-line notice to print. Throws UserError for an unknown name or cuda without a device.
// precision: the run's (fp32 makes the CUDA backend without TF32 math; the caller checks the
// backend can do it with precision_unsupported). cuda_device: the CUDA ordinal (a data-parallel
// rank's own GPU, DistributedTraining::cuda_device).
std::shared_ptr<Backend> make_backend(const std::string& requested, std::string* notice,
                                      std::optional<Precision> precision = std::nullopt,
                                      int cuda_device = 0);

// ---- config text ----
struct ConfigOverride {
  std::string table;    // "train", "data"
  std::string key;      // "epochs"
  std::string literal;  // TOML literal: 5, "data/x.csv"
};

// Writes overrides into the config text: replaces a value in place, adds a missing key under
// its table's header, or appends a missing table. The result is parsed again by the caller.
std::string apply_config_overrides(const std::string& text, const std::string& origin,
                                   const std::vector<ConfigOverride>& overrides);

// A TOML basic string literal for s.
std::string toml_string(const std::string& s);

}  // namespace fer::training
