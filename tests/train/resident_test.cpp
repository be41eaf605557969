// Resident data against the batch stream, end to end on the committed sample: on the CPU backend
// the two feeds must train the same run bit for bit (weights, BN statistics, Adam moments,
// history, predictions), with and without augmentation, with a partial last batch, and across a
// mid-epoch interrupt and resume; the per-epoch loader stall is reported; the config key and the
// command-line value are strict.
#include <gtest/gtest.h>

#include <algorithm>

#include <cstdio>
#include <sstream>

#include "engine/training/checkpoint.h"
#include "engine/training/trainer.h"
#include "tests/train/train_test_util.h"

namespace {

using namespace fer::training;
using namespace fer::training::testing;

// Trains the config twice for `epochs`, streamed and resident; expects identical runs.
void expect_resident_equals_streamed(const std::string& config_text, int epochs) {
  TempDir dir;
  write_text(dir / "c.toml", config_text);
  TrainRequest streamed = request(dir / "c.toml", dir / "streamed", "off");
  TrainRequest resident = request(dir / "c.toml", dir / "resident", "on");
  streamed.epochs = resident.epochs = epochs;
  ASSERT_EQ(train(streamed).status, TrainStatus::completed);
  ASSERT_EQ(train(resident).status, TrainStatus::completed);
  const Checkpoint a = read_checkpoint(dir / "streamed/last.ckpt");
  const Checkpoint b = read_checkpoint(dir / "resident/last.ckpt");
  expect_same_training_state(a, b);
  EXPECT_EQ(a.predictions.confidence, b.predictions.confidence);
  EXPECT_EQ(read_checkpoint(dir / "streamed/best.ckpt").params, read_checkpoint(dir / "resident/best.ckpt").params);
  EXPECT_EQ(history_metric_rows(dir / "streamed/history.csv"), history_metric_rows(dir / "resident/history.csv"));
  ASSERT_EQ(a.history.epochs.size(), size_t(epochs));
  // The weights moved: the comparison is not between two untrained models.
  TrainRequest one = request(dir / "c.toml", dir / "one", "on");
  one.epochs = 1;
  ASSERT_EQ(train(one).status, TrainStatus::completed);
  EXPECT_NE(read_checkpoint(dir / "one/last.ckpt").params, b.params);
}

std::string without_augmentation(std::string cfg) {
  const std::string aug = "shear_range = 0.2\nzoom_range = 0.2\nhorizontal_flip = true\n";
  cfg.replace(cfg.find(aug), aug.size(), "");
  return cfg;
}

TEST(ResidentTraining, SameRunAsTheStreamWithAugmentation) { expect_resident_equals_streamed(tiny_config(), 2); }

TEST(ResidentTraining, SameRunAsTheStreamWithoutAugmentation) {
  expect_resident_equals_streamed(without_augmentation(tiny_config()), 2);
}

TEST(ResidentTraining, SameRunAsTheStreamWithAPartialLastBatch) {
  // 72 training images at batch 16 without drop_last: 4 full batches and one of 8.
  expect_resident_equals_streamed(tiny_config("", "drop_last = false\n"), 2);
}

TEST(ResidentTraining, InterruptedResidentRunResumesIntoTheStreamedRun) {
  TempDir dir;
  write_text(dir / "c.toml", tiny_config());
  TrainRequest straight = request(dir / "c.toml", dir / "straight", "off");
  straight.epochs = 3;
  ASSERT_EQ(train(straight).status, TrainStatus::completed);

  TrainRequest first = request(dir / "c.toml", dir / "split", "on");
  first.epochs = 3;
  first.interrupt_after_steps = 6;  // epoch 2, after its second step
  Trainer t(first);
  const TrainResult stopped = t.run();
  ASSERT_EQ(stopped.status, TrainStatus::interrupted);
  EXPECT_NE(t.resume_command().find("--resident on"), std::string::npos) << t.resume_command();
  EXPECT_EQ(read_checkpoint(dir / "split/last.ckpt").position.batch_in_epoch, 2);

  TrainRequest second = resume_request(dir / "c.toml", dir / "split", 3, "on");
  ASSERT_EQ(train(second).status, TrainStatus::completed);
  expect_same_training_state(read_checkpoint(dir / "straight/last.ckpt"), read_checkpoint(dir / "split/last.ckpt"));
}

// history.csv's loader_stall_seconds column, per epoch (found by its header name: columns are
// appended over time; the class-name column is empty or a plain name in these runs).
std::vector<double> stall_column(const std::string& csv_path) {
  auto split = [](const std::string& line) {
    std::vector<std::string> fields;
    std::istringstream f(line);
    for (std::string field; std::getline(f, field, ',');) fields.push_back(field);
    return fields;
  };
  std::istringstream in(read_text(csv_path));
  std::string line;
  std::getline(in, line);
  const std::vector<std::string> header = split(line);
  const size_t col = size_t(std::find(header.begin(), header.end(), "loader_stall_seconds") - header.begin());
  EXPECT_LT(col, header.size()) << line;
  std::vector<double> out;
  while (std::getline(in, line)) {
    const std::vector<std::string> fields = split(line);
    if (col < fields.size()) out.push_back(std::stod(fields[col]));
  }
  return out;
}

TEST(ResidentTraining, ReportsTheLoaderStallPerEpoch) {
  TempDir dir;
  write_text(dir / "c.toml", tiny_config());
  for (const char* mode : {"on", "off"}) {
    TrainRequest r = request(dir / "c.toml", dir / mode, mode);
    r.epochs = 2;
    const auto [res, text] = train_captured(r);
    ASSERT_EQ(res.status, TrainStatus::completed);
    const bool resident = std::string(mode) == "on";
    EXPECT_NE(text.find(resident ? "Data: resident in host memory" : "Data: streamed by the loader thread"),
              std::string::npos)
        << text;
    const std::vector<double> stall = stall_column(dir / (std::string(mode) + "/history.csv"));
    ASSERT_EQ(stall.size(), 2u);
    for (double s : stall) {
      EXPECT_GE(s, 0.0);
      // Resident: the epoch's permutation and 4 gathers of 16 faces, no waiting on any thread.
      if (resident) {
        EXPECT_LT(s, 0.05) << "resident stall " << s;
      }
    }
    // Carried by the checkpoint, so a resumed run keeps the column.
    const Checkpoint c = read_checkpoint(dir / (std::string(mode) + "/last.ckpt"));
    ASSERT_EQ(c.history.epochs.size(), 2u);
    EXPECT_EQ(c.history.epochs[0].loader_stall_seconds, stall[0]);
  }
}

TEST(ResidentTraining, ConfigKeyAndCommandLineAreStrict) {
  TempDir dir;
  std::string cfg = tiny_config();
  const std::string anchor = "drop_classes = [1]\n";
  // The config's value is used when the command line says nothing, and the command line wins.
  std::string on = cfg;
  on.replace(on.find(anchor), anchor.size(), anchor + "resident = \"on\"\n");
  write_text(dir / "on.toml", on);
  TrainRequest from_config = request(dir / "on.toml", dir / "cfg", "");
  from_config.epochs = 1;
  const auto [res, text] = train_captured(from_config);
  ASSERT_EQ(res.status, TrainStatus::completed);
  EXPECT_NE(text.find("Data: resident in host memory"), std::string::npos) << text;
  EXPECT_NE(text.find("resident = \"on\""), std::string::npos) << text;
  TrainRequest overridden = request(dir / "on.toml", dir / "cli_off", "off");
  overridden.epochs = 1;
  const auto [res_off, text_off] = train_captured(overridden);
  ASSERT_EQ(res_off.status, TrainStatus::completed);
  EXPECT_NE(text_off.find("Data: streamed by the loader thread (resident = \"off\")"), std::string::npos) << text_off;

  std::string bad = cfg;
  bad.replace(bad.find(anchor), anchor.size(), anchor + "resident = \"sometimes\"\n");
  write_text(dir / "bad.toml", bad);
  const std::string msg = user_error_of([&] { Trainer t(request(dir / "bad.toml", dir / "bad", "")); });
  EXPECT_NE(msg.find("bad.toml:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("resident"), std::string::npos) << msg;
  EXPECT_NE(msg.find("\"auto\", \"on\", \"off\""), std::string::npos) << msg;
  EXPECT_FALSE(exists(dir / "bad"));

  write_text(dir / "c.toml", cfg);
  const std::string cli = user_error_of([&] { Trainer t(request(dir / "c.toml", dir / "cli", "yes")); });
  EXPECT_NE(cli.find("--resident must be auto, on or off"), std::string::npos) << cli;
  EXPECT_FALSE(exists(dir / "cli"));
}

}  // namespace
