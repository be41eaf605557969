#pragma once
// Helpers of the training tests: temporary folders, a tiny model config that trains in a fraction
// of a second on the committed sample, and checkpoint comparisons.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "engine/error.h"
#include "engine/training/checkpoint.h"
#include "engine/training/trainer.h"
#include "tests/common/user_error.h"

#include "tests/common/temp_files.h"

namespace fer::training::testing {

inline std::string source_dir() { return FER_SOURCE_DIR; }
inline std::string sample_csv() { return source_dir() + "/data/sample/fer2013_sample.csv"; }

using test_files::TempDir;
inline void write_text(const std::string& path, const std::string& content) { test_files::write_file(path, content); }
inline std::string read_text(const std::string& path) { return test_files::read_file(path); }

inline bool exists(const std::string& path) { return std::filesystem::exists(path); }

// A small network using convolution, batch normalisation, pooling, dropout and dense layers,
// with augmentation on: every source of randomness a real config has. 72 training images of the
// sample at batch 16 give 4 steps per epoch.
inline std::string tiny_config(const std::string& extra = "", const std::string& train_extra = "",
                               const std::string& name = "tiny") {
  return "[model]\nname = \"" + name +
         "\"\ninput_shape = [48, 48, 1]\nclasses = 6\n\n"
         "[train]\nlearning_rate = 1e-3\nbatch_size = 16\nepochs = 3\nseed = 7\n" +
         train_extra +
         "\n[data]\npath = \"" + sample_csv() +
         "\"\ndrop_classes = [1]\n\n"
         "[augment]\nshear_range = 0.2\nzoom_range = 0.2\nhorizontal_flip = true\n\n" +
         extra +
         "\n[[layers]]\ntype = \"Conv2D\"\nfilters = 6\nkernel_size = 3\nstrides = 2\nactivation = \"relu\"\n"
         "\n[[layers]]\ntype = \"BatchNormalization\"\n"
         "\n[[layers]]\ntype = \"MaxPooling2D\"\npool_size = 2\n"
         "\n[[layers]]\ntype = \"Dropout\"\nrate = 0.25\n"
         "\n[[layers]]\ntype = \"Flatten\"\n"
         "\n[[layers]]\ntype = \"Dense\"\nunits = 16\nactivation = \"relu\"\n"
         "\n[[layers]]\ntype = \"Dropout\"\nrate = 0.5\n"
         "\n[[layers]]\ntype = \"Dense\"\nunits = 6\nactivation = \"softmax\"\n";
}

// A quiet CPU training request for `config` into the run directory `out`; `resident` "on" or
// "off" sets --resident ("" leaves the config's choice).
inline TrainRequest request(const std::string& config, const std::string& out, const std::string& resident = "") {
  TrainRequest r;
  r.config_path = config;
  r.device = "cpu";
  r.out_dir = out;
  r.out = nullptr;  // quiet
  if (!resident.empty()) r.resident = resident;
  return r;
}

// A request that continues the run in `run_dir` (--resume DIR, no --out) up to `epochs` epochs.
inline TrainRequest resume_request(const std::string& config, const std::string& run_dir, int epochs,
                                   const std::string& resident = "") {
  TrainRequest r = request(config, "", resident);
  r.out_dir.reset();
  r.resume = run_dir;
  r.epochs = epochs;
  return r;
}

inline TrainResult train(const TrainRequest& r) {
  Trainer t(r);
  return t.run();
}

// Runs a request with its console output captured; returns (result, output).
inline std::pair<TrainResult, std::string> train_captured(TrainRequest r) {
  std::FILE* log = std::tmpfile();
  r.out = log;
  r.tty = false;
  const TrainResult res = train(r);
  std::rewind(log);
  std::string text(1 << 20, '\0');
  text.resize(std::fread(text.data(), 1, text.size(), log));
  std::fclose(log);
  return {res, text};
}

// Metric columns of history.csv (epoch..lr), without the timing columns.
inline std::vector<std::string> history_metric_rows(const std::string& csv_path) {
  std::istringstream in(read_text(csv_path));
  std::vector<std::string> rows;
  std::string line;
  while (std::getline(in, line)) {
    size_t cut = 0;
    for (int commas = 0; commas < 6 && cut != std::string::npos; ++commas) cut = line.find(',', cut + 1);
    rows.push_back(line.substr(0, cut));
  }
  return rows;
}

// Everything in two checkpoints that must be identical for "resume equals straight".
inline void expect_same_training_state(const Checkpoint& a, const Checkpoint& b) {
  EXPECT_EQ(a.params, b.params) << "weights differ";
  EXPECT_EQ(a.state, b.state) << "BatchNormalization statistics differ";
  EXPECT_EQ(a.optimizer_state, b.optimizer_state) << "Adam moments differ";
  EXPECT_EQ(a.optimizer_steps, b.optimizer_steps);
  EXPECT_EQ(a.learning_rate, b.learning_rate);
  EXPECT_EQ(a.position.epoch, b.position.epoch);
  EXPECT_EQ(a.position.global_step, b.position.global_step);
  ASSERT_EQ(a.history.epochs.size(), b.history.epochs.size());
  for (size_t i = 0; i < a.history.epochs.size(); ++i) {
    const EpochRecord &x = a.history.epochs[i], &y = b.history.epochs[i];
    EXPECT_EQ(x.loss, y.loss) << "epoch " << x.epoch;
    EXPECT_EQ(x.accuracy, y.accuracy) << "epoch " << x.epoch;
    EXPECT_EQ(x.val_loss, y.val_loss) << "epoch " << x.epoch;
    EXPECT_EQ(x.val_accuracy, y.val_accuracy) << "epoch " << x.epoch;
    EXPECT_EQ(x.lr, y.lr) << "epoch " << x.epoch;
    EXPECT_GT(x.val_predicted_classes, 0) << "epoch " << x.epoch << ": collapse signs not recorded";
    EXPECT_EQ(x.val_predicted_classes, y.val_predicted_classes) << "epoch " << x.epoch;
    EXPECT_EQ(x.val_only_class, y.val_only_class) << "epoch " << x.epoch;
    EXPECT_EQ(x.loss_exploded, y.loss_exploded) << "epoch " << x.epoch;
  }
  EXPECT_EQ(a.callbacks.best.best, b.callbacks.best.best);
  EXPECT_EQ(a.callbacks.best.best_epoch, b.callbacks.best.best_epoch);
  EXPECT_EQ(a.callbacks.reduce_lr.wait, b.callbacks.reduce_lr.wait);
  EXPECT_EQ(a.callbacks.reduce_lr.best, b.callbacks.reduce_lr.best);
  EXPECT_EQ(a.predictions.predicted, b.predictions.predicted);
}

using fer::test_errors::user_error_of;

}  // namespace fer::training::testing
