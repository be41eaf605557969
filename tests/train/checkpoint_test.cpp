// The checkpoint format: round trip of every section, atomic writes, and refusal (with a clear
// message naming the file) of corrupt, truncated, newer-version, foreign and wrong-model files.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "engine/training/checkpoint.h"
#include "models/run_config.h"
#include "tests/train/train_test_util.h"

namespace {

using namespace fer::training;
using namespace fer::training::testing;

Checkpoint checkpoint_of(const std::string& config_file, float fill) {
  const auto config = fer::models::load_run_config(source_dir() + "/configs/" + config_file);
  auto graph = fer::models::build_graph(config);
  Checkpoint c;
  c.model_name = config.model.name;
  c.arch_hash = fer::models::architecture_hash(*graph);
  c.class_names = {"angry", "fear", "happy", "sad", "surprise", "neutral"};
  c.class_names.resize(size_t(graph->classes()), "disgust");
  c.config_text = config.source_text;
  c.config_origin = config.path;
  c.tensors = tensor_table(*graph);
  c.trainable_count = graph->trainable_count();
  c.state_count = graph->non_trainable_count();
  c.params.resize(size_t(c.trainable_count));
  for (size_t i = 0; i < c.params.size(); ++i) c.params[i] = fill + float(i % 1000) * 1e-3f;
  c.state.assign(size_t(c.state_count), 0.5f);
  c.optimizer_kind = 0;
  c.learning_rate = 1e-4f;
  c.beta1 = 0.9f;
  c.beta2 = 0.999f;
  c.epsilon = 1e-7f;
  c.optimizer_steps = 1234;
  c.optimizer_state.assign(size_t(2 * c.trainable_count), 0.25f);
  c.position.seed = 42;
  c.position.epoch = 3;
  c.position.batch_in_epoch = 17;
  c.position.global_step = 677;
  c.position.target_epochs = 50;
  c.position.batch_size = 128;
  c.position.partial_loss_sum = 1234.5678;
  c.position.partial_correct = 900;
  c.position.partial_samples = 2176;
  c.callbacks.best = {0.61, 3};
  c.callbacks.reduce_lr = {1.05, 2, 1};
  c.callbacks.early_stopping.best = 1.01;
  c.callbacks.early_stopping.has_best_weights = true;
  c.callbacks.early_stopping.best_params = c.params;
  c.callbacks.early_stopping.best_state = c.state;
  for (int e = 1; e <= 3; ++e) {
    EpochRecord r;
    r.epoch = e;
    r.loss = 1.5 / e;
    r.accuracy = 0.3 + 0.1 * e;
    r.val_loss = 1.4 / e;
    r.val_accuracy = 0.35 + 0.1 * e;
    r.lr = 1e-3;
    r.steps = 220;
    r.train_images = 28160;
    r.seconds = 30.5;
    c.history.epochs.push_back(r);
  }
  c.predictions.epoch = 3;
  c.predictions.rows = {5, 6, 7};
  c.predictions.truth = {0, 1, 2};
  c.predictions.predicted = {0, 2, 2};
  c.predictions.confidence = {0.9f, 0.6f, 0.7f};
  c.device = "cpu";
  c.created = "2026-11-25 10:00:00";
  return c;
}

TEST(Checkpoint, RoundTripsEverySection) {
  TempDir dir;
  const Checkpoint c = checkpoint_of("model5.toml", 0.01f);
  write_checkpoint(dir / "a.ckpt", c);
  // Atomic write: only the final file remains, no temporary.
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    ++files;
    EXPECT_EQ(e.path().filename(), "a.ckpt");
  }
  EXPECT_EQ(files, 1);
  const Checkpoint r = read_checkpoint(dir / "a.ckpt");
  EXPECT_EQ(r.model_name, "model5");
  EXPECT_EQ(r.arch_hash, c.arch_hash);
  EXPECT_EQ(r.class_names, c.class_names);
  EXPECT_EQ(r.config_text, c.config_text);
  EXPECT_EQ(r.tensors.size(), c.tensors.size());
  EXPECT_EQ(r.tensors[0].name, c.tensors[0].name);
  EXPECT_EQ(r.tensors[0].name.substr(0, 6), "conv2d");
  EXPECT_EQ(r.tensors.back().shape, c.tensors.back().shape);
  EXPECT_EQ(r.params, c.params);
  EXPECT_EQ(r.state, c.state);
  EXPECT_EQ(r.optimizer_state, c.optimizer_state);
  EXPECT_EQ(r.optimizer_steps, 1234);
  EXPECT_EQ(r.learning_rate, 1e-4f);
  EXPECT_EQ(r.position.global_step, 677u);
  EXPECT_EQ(r.position.batch_in_epoch, 17);
  EXPECT_EQ(r.position.partial_loss_sum, 1234.5678);
  EXPECT_EQ(r.callbacks.best.best_epoch, 3);
  EXPECT_EQ(r.callbacks.reduce_lr.cooldown_counter, 1);
  EXPECT_EQ(r.callbacks.early_stopping.best_params, c.params);
  ASSERT_EQ(r.history.epochs.size(), 3u);
  EXPECT_EQ(r.history.epochs[2].val_accuracy, c.history.epochs[2].val_accuracy);
  EXPECT_EQ(r.predictions.predicted, c.predictions.predicted);
  EXPECT_EQ(r.device, "cpu");

  // Eval/predict read the weights only.
  const Checkpoint w = read_checkpoint(dir / "a.ckpt", /*weights_only=*/true);
  EXPECT_EQ(w.params, c.params);
  EXPECT_TRUE(w.optimizer_state.empty());
  EXPECT_TRUE(w.callbacks.early_stopping.best_params.empty());
}

TEST(Checkpoint, RefusesACorruptPayloadOrHeader) {
  const Checkpoint c = checkpoint_of("model5.toml", 0.01f);
  const std::string good = serialize_checkpoint(c);
  std::string bad = good;
  bad[good.size() / 2] ^= 0x10;  // one flipped bit in the weights
  std::string msg = user_error_of([&] { parse_checkpoint(bad, "x/last.ckpt"); });
  EXPECT_NE(msg.find("x/last.ckpt"), std::string::npos) << msg;
  EXPECT_NE(msg.find("corrupt"), std::string::npos) << msg;
  EXPECT_NE(msg.find("checksum"), std::string::npos) << msg;

  bad = good;
  bad[20] ^= 0x01;  // payload size field
  msg = user_error_of([&] { parse_checkpoint(bad, "x/last.ckpt"); });
  EXPECT_NE(msg.find("header checksum"), std::string::npos) << msg;

  msg = user_error_of([&] { parse_checkpoint(good + "junk", "x/last.ckpt"); });
  EXPECT_NE(msg.find("corrupt"), std::string::npos) << msg;
}

TEST(Checkpoint, RefusesATruncatedFile) {
  TempDir dir;
  const std::string good = serialize_checkpoint(checkpoint_of("model5.toml", 0.01f));
  for (size_t keep : {size_t(3), size_t(30), size_t(48), good.size() / 3, good.size() - 1}) {
    write_text(dir / "cut.ckpt", good.substr(0, keep));
    const std::string msg = user_error_of([&] { read_checkpoint(dir / "cut.ckpt"); });
    EXPECT_NE(msg.find("truncated"), std::string::npos) << "kept " << keep << " bytes: " << msg;
    EXPECT_NE(msg.find("cut.ckpt"), std::string::npos) << msg;
  }
  write_text(dir / "empty.ckpt", "");
  EXPECT_NE(user_error_of([&] { read_checkpoint(dir / "empty.ckpt"); }).find("not a fer_gpu checkpoint"),
            std::string::npos);
}

TEST(Checkpoint, RefusesOtherFilesAndNewerVersions) {
  TempDir dir;
  write_text(dir / "notes.txt", "this is not a checkpoint at all, just some text that is long enough");
  std::string msg = user_error_of([&] { read_checkpoint(dir / "notes.txt"); });
  EXPECT_NE(msg.find("not a fer_gpu checkpoint"), std::string::npos) << msg;

  msg = user_error_of([&] { read_checkpoint(dir / "missing.ckpt"); });
  EXPECT_NE(msg.find("no such checkpoint"), std::string::npos) << msg;

  // A file from a future format version is refused as such (checked before the header checksum,
  // since a later format may checksum its header differently).
  std::string future = serialize_checkpoint(checkpoint_of("model5.toml", 0.01f));
  const uint32_t v = kCheckpointVersion + 1;
  std::memcpy(future.data() + 8, &v, 4);
  msg = user_error_of([&] { parse_checkpoint(future, "f.ckpt"); });
  EXPECT_NE(msg.find("format version " + std::to_string(v) + " is newer"), std::string::npos) << msg;
}

TEST(Checkpoint, WrongModelIsRefusedNamingBothModels) {
  const Checkpoint c8 = checkpoint_of("model8.toml", 0.02f);
  const auto config5 = fer::models::load_run_config(source_dir() + "/configs/model5.toml");
  auto graph5 = fer::models::build_graph(config5);
  const std::string msg = user_error_of([&] {
    check_checkpoint_matches(c8, "runs/m8/best.ckpt", *graph5, fer::models::architecture_hash(*graph5), "model5",
                             "configs/model5.toml");
  });
  EXPECT_NE(msg.find("runs/m8/best.ckpt is a checkpoint of model8"), std::string::npos) << msg;
  EXPECT_NE(msg.find("configs/model5.toml describes model5"), std::string::npos) << msg;

  // Same name, changed architecture.
  Checkpoint c5 = checkpoint_of("model5.toml", 0.02f);
  c5.arch_hash ^= 1;
  const std::string same = user_error_of([&] {
    check_checkpoint_matches(c5, "a.ckpt", *graph5, fer::models::architecture_hash(*graph5), "model5",
                             "configs/model5.toml");
  });
  EXPECT_NE(same.find("different model5 architecture"), std::string::npos) << same;

  // The right model passes.
  const Checkpoint ok = checkpoint_of("model5.toml", 0.02f);
  EXPECT_NO_THROW(check_checkpoint_matches(ok, "a.ckpt", *graph5, fer::models::architecture_hash(*graph5), "model5",
                                           "configs/model5.toml"));
}

}  // namespace
