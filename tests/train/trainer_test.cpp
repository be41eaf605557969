// The training loop end to end on the committed sample (72 training, 36 validation faces) with a
// tiny model: artefacts, exact resume (after whole epochs and mid-epoch), divergence, early
// stopping, the sample fallback, and checks that fail before step 0 without writing anything.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <utility>

#include "engine/training/checkpoint.h"
#include "engine/training/trainer.h"
#include "models/run_config.h"
#include "tests/train/train_test_util.h"

namespace {

using namespace fer::training;
using namespace fer::training::testing;

TEST(Trainer, ShortRunWritesEveryArtefact) {
  TempDir dir;
  write_text(dir / "tiny.toml", tiny_config());
  TrainRequest r = request(dir / "tiny.toml", dir / "run");
  r.epochs = 2;
  const TrainResult res = train(r);
  EXPECT_EQ(res.status, TrainStatus::completed);
  EXPECT_EQ(res.epochs_done, 2);
  for (const char* f : {"config.toml", "history.csv", "history.json", "best.ckpt", "last.ckpt", "report.html"}) {
    EXPECT_TRUE(exists(dir / ("run/" + std::string(f)))) << f;
  }
  const auto rows = history_metric_rows(dir / "run/history.csv");
  ASSERT_EQ(rows.size(), 3u);  // header + 2 epochs
  EXPECT_EQ(rows[1].substr(0, 2), "1,");
  // The resolved config carries the command-line epochs and rebuilds the same model.
  const auto resolved = fer::models::load_run_config(dir / "run/config.toml");
  EXPECT_EQ(resolved.train.epochs, 2);
  const Checkpoint last = read_checkpoint(dir / "run/last.ckpt");
  EXPECT_EQ(last.model_name, "tiny");
  EXPECT_EQ(last.position.epoch, 2);
  EXPECT_EQ(last.position.global_step, 8u);  // 72 // 16 = 4 steps per epoch
  EXPECT_EQ(last.history.epochs.size(), 2u);
  EXPECT_EQ(last.class_names, (std::vector<std::string>{"angry", "fear", "happy", "sad", "surprise", "neutral"}));
  EXPECT_EQ(last.predictions.rows.size(), 36u);
  const auto rebuilt = fer::models::parse_run_config(last.config_text, "embedded");
  EXPECT_EQ(fer::models::architecture_hash(*fer::models::build_graph(rebuilt)), last.arch_hash);
  for (const auto& e : last.history.epochs) {
    EXPECT_TRUE(std::isfinite(e.loss));
    EXPECT_GE(e.val_accuracy, 0.0);
    EXPECT_LE(e.val_accuracy, 1.0);
    EXPECT_GT(e.train_seconds, 0.0);
  }
  const std::string html = read_text(dir / "run/report.html");
  EXPECT_NE(html.find("model accuracy"), std::string::npos);
  EXPECT_NE(html.find("model loss"), std::string::npos);
  EXPECT_NE(html.find("confusion matrix"), std::string::npos);
  EXPECT_NE(html.find("data:image/png;base64,"), std::string::npos);  // misclassified faces
  for (const char* external : {"src=\"http", "href=\"http", "<script", "<link"}) {
    EXPECT_EQ(html.find(external), std::string::npos) << "the report must not load anything: " << external;
  }
}

// Shared by the resume tests: ReduceLROnPlateau with patience 1 so the learning rate (and the
// callback state) change along the way.
std::string resume_config() {
  return tiny_config("[callbacks.reduce_lr_on_plateau]\nmonitor = \"loss\"\nfactor = 0.5\npatience = 1\nmin_delta = 0.5\n");
}

TEST(Trainer, ResumeAfterWholeEpochsEqualsAStraightRun) {
  TempDir dir;
  write_text(dir / "tiny.toml", resume_config());
  TrainRequest straight = request(dir / "tiny.toml", dir / "straight");
  straight.epochs = 4;
  ASSERT_EQ(train(straight).status, TrainStatus::completed);

  TrainRequest first = request(dir / "tiny.toml", dir / "split");
  first.epochs = 2;
  ASSERT_EQ(train(first).status, TrainStatus::completed);
  TrainRequest second = resume_request(dir / "tiny.toml", dir / "split", 4);
  ASSERT_EQ(train(second).status, TrainStatus::completed);

  const Checkpoint a = read_checkpoint(dir / "straight/last.ckpt");
  const Checkpoint b = read_checkpoint(dir / "split/last.ckpt");
  expect_same_training_state(a, b);
  EXPECT_NE(a.history.epochs.front().lr, a.history.epochs.back().lr) << "the test wants a learning-rate change";
  EXPECT_EQ(history_metric_rows(dir / "straight/history.csv"), history_metric_rows(dir / "split/history.csv"));
  EXPECT_EQ(read_checkpoint(dir / "straight/best.ckpt").params, read_checkpoint(dir / "split/best.ckpt").params);
}

TEST(Trainer, InterruptMidEpochSavesThePositionAndResumesExactly) {
  TempDir dir;
  write_text(dir / "tiny.toml", resume_config());
  TrainRequest straight = request(dir / "tiny.toml", dir / "straight");
  straight.epochs = 3;
  ASSERT_EQ(train(straight).status, TrainStatus::completed);

  TrainRequest first = request(dir / "tiny.toml", dir / "split");
  first.epochs = 3;
  first.interrupt_after_steps = 6;  // epoch 2, after its second step
  const TrainResult stopped = train(first);
  ASSERT_EQ(stopped.status, TrainStatus::interrupted);
  EXPECT_NE(stopped.message.find("--resume " + dir / "split"), std::string::npos) << stopped.message;
  EXPECT_NE(stopped.message.find("--epochs 3"), std::string::npos) << stopped.message;
  const Checkpoint mid = read_checkpoint(dir / "split/last.ckpt");
  EXPECT_EQ(mid.position.epoch, 1);
  EXPECT_EQ(mid.position.batch_in_epoch, 2);
  EXPECT_EQ(mid.position.global_step, 6u);
  EXPECT_EQ(mid.history.epochs.size(), 1u);

  TrainRequest second = resume_request(dir / "tiny.toml", dir / "split", 3);
  ASSERT_EQ(train(second).status, TrainStatus::completed);
  expect_same_training_state(read_checkpoint(dir / "straight/last.ckpt"), read_checkpoint(dir / "split/last.ckpt"));
}

TEST(Trainer, AbsurdLearningRateStopsNamingEpochAndStep) {
  TempDir dir;
  std::string cfg = tiny_config();
  cfg.replace(cfg.find("learning_rate = 1e-3"), 20, "learning_rate = 1e30");
  write_text(dir / "nan.toml", cfg);
  TrainRequest r = request(dir / "nan.toml", dir / "run");
  const TrainResult res = train(r);
  ASSERT_EQ(res.status, TrainStatus::diverged);
  EXPECT_NE(res.message.find("epoch 1 at step"), std::string::npos) << res.message;
  EXPECT_TRUE(res.message.find("NaN") != std::string::npos || res.message.find("infinite") != std::string::npos)
      << res.message;
  EXPECT_NE(res.message.find("no checkpoint"), std::string::npos) << res.message;
  EXPECT_FALSE(exists(dir / "run/last.ckpt"));
  EXPECT_FALSE(exists(dir / "run/best.ckpt"));
}

TEST(Trainer, DivergenceKeepsTheLastGoodCheckpoint) {
  TempDir dir;
  write_text(dir / "tiny.toml", tiny_config());
  TrainRequest r = request(dir / "tiny.toml", dir / "run");
  r.epochs = 1;
  ASSERT_EQ(train(r).status, TrainStatus::completed);
  // Blow the weights up so the next step overflows, as a diverging run would.
  Checkpoint c = read_checkpoint(dir / "run/last.ckpt");
  for (float& p : c.params) p *= 1e30f;
  write_checkpoint(dir / "run/last.ckpt", c);
  const std::string before = read_text(dir / "run/last.ckpt");

  TrainRequest more = request(dir / "tiny.toml", "");
  more.out_dir.reset();
  more.resume = dir / "run";
  more.epochs = 3;
  const TrainResult res = train(more);
  ASSERT_EQ(res.status, TrainStatus::diverged);
  EXPECT_NE(res.message.find("epoch 2 at step 1"), std::string::npos) << res.message;
  EXPECT_NE(res.message.find("last good checkpoint is " + dir / "run/last.ckpt"), std::string::npos) << res.message;
  EXPECT_EQ(read_text(dir / "run/last.ckpt"), before) << "last.ckpt must not be overwritten by diverged weights";
}

TEST(Trainer, EarlyStoppingRestoresTheBestWeightsAndEndsTheRun) {
  TempDir dir;
  // min_delta 100 on val_loss: only the first epoch can improve, so the run stops after epoch 2
  // and goes back to epoch 1's weights.
  write_text(dir / "es.toml",
             tiny_config("[callbacks.early_stopping]\nmonitor = \"val_loss\"\npatience = 1\nmin_delta = 100.0\n"
                         "restore_best_weights = true\n"));
  TrainRequest r = request(dir / "es.toml", dir / "es");
  r.epochs = 5;
  const TrainResult res = train(r);
  EXPECT_EQ(res.status, TrainStatus::early_stopped);
  EXPECT_EQ(res.epochs_done, 2);
  TrainRequest one = request(dir / "es.toml", dir / "one");
  one.epochs = 1;
  ASSERT_EQ(train(one).status, TrainStatus::completed);
  const Checkpoint stopped = read_checkpoint(dir / "es/last.ckpt");
  EXPECT_TRUE(stopped.position.finished);
  EXPECT_EQ(stopped.callbacks.early_stopping.stopped_epoch, 2);
  EXPECT_EQ(stopped.params, read_checkpoint(dir / "one/last.ckpt").params);
  EXPECT_EQ(stopped.state, read_checkpoint(dir / "one/last.ckpt").state);
  // A finished run is not resumed.
  TrainRequest again = request(dir / "es.toml", "");
  again.out_dir.reset();
  again.resume = dir / "es";
  again.epochs = 10;
  const std::string msg = user_error_of([&] { Trainer t(again); });
  EXPECT_NE(msg.find("stopped early"), std::string::npos) << msg;
}

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

std::string collapsing_config(const std::string& extra = "") {
  std::string cfg = tiny_config(extra);
  cfg.replace(cfg.find("learning_rate = 1e-3"), 20, "learning_rate = 1000");
  return cfg;
}

// Learning rate 1000 on the bundled sample: the loss explodes (about 1e12) but stays finite and
// every validation face gets the same class. Each sign is warned about once in the run, also
// across a resume, every collapsed epoch line says so, and training goes on.
TEST(Trainer, CollapsedRunWarnsOnceAndMarksEveryCollapsedEpoch) {
  TempDir dir;
  write_text(dir / "lr1000.toml", collapsing_config());
  TrainRequest r = request(dir / "lr1000.toml", dir / "run");
  r.epochs = 2;
  const auto [res, out] = train_captured(r);
  ASSERT_EQ(res.status, TrainStatus::completed) << out;
  EXPECT_EQ(count_of(out, "Warning: the loss exploded in epoch 1"), 1u) << out;
  EXPECT_EQ(count_of(out, "Warning: the loss exploded"), 1u) << out;
  EXPECT_EQ(count_of(out, "Warning: in epoch 1 the model predicts one class"), 1u) << out;
  EXPECT_EQ(count_of(out, "Warning: in epoch"), 1u) << out;
  EXPECT_NE(out.find("learning rate far too high (this epoch used 1000"), std::string::npos) << out;
  EXPECT_EQ(count_of(out, "  loss exploded  predicts only: "), 2u) << "both epoch lines: " << out;
  EXPECT_NE(out.find("saved best.ckpt - but this epoch has collapsed"), std::string::npos) << out;
  const Checkpoint last = read_checkpoint(dir / "run/last.ckpt");
  ASSERT_EQ(last.history.epochs.size(), 2u);
  for (const EpochRecord& e : last.history.epochs) {
    EXPECT_TRUE(e.loss_exploded) << e.epoch;
    EXPECT_EQ(e.val_predicted_classes, 1) << e.epoch;
    EXPECT_FALSE(e.val_only_class.empty()) << e.epoch;
  }
  const std::string csv = read_text(dir / "run/history.csv");
  EXPECT_NE(csv.find("," + last.history.epochs[0].val_only_class + ",1\n"), std::string::npos) << csv;

  // Resumed: the history says both signs were warned about already.
  TrainRequest more = request(dir / "lr1000.toml", "");
  more.out_dir.reset();
  more.resume = dir / "run";
  more.epochs = 3;
  const auto [res2, out2] = train_captured(more);
  ASSERT_EQ(res2.status, TrainStatus::completed) << out2;
  EXPECT_EQ(out2.find("Warning:"), std::string::npos) << out2;
  EXPECT_NE(out2.find("Epoch 3/3"), std::string::npos) << out2;
}

// The recipe that learns (learning rate 1e-3) shows no collapse sign and no warning.
TEST(Trainer, HealthyRunGivesNoCollapseWarning) {
  TempDir dir;
  write_text(dir / "tiny.toml", tiny_config());
  const auto [res, out] = train_captured(request(dir / "tiny.toml", dir / "run"));
  ASSERT_EQ(res.status, TrainStatus::completed) << out;
  EXPECT_NE(out.find("Epoch 3/3"), std::string::npos) << out;
  for (const char* sign : {"Warning", "exploded", "predicts only", "collapsed"}) {
    EXPECT_EQ(out.find(sign), std::string::npos) << sign << " in:\n" << out;
  }
  for (const EpochRecord& e : read_checkpoint(dir / "run/last.ckpt").history.epochs) {
    EXPECT_FALSE(e.loss_exploded);
    EXPECT_GT(e.val_predicted_classes, 1);
  }
}

// [callbacks.terminate_on_collapse] stops the run at the first exploded epoch, which then is not
// resumed.
TEST(Trainer, TerminateOnCollapseStopsTheRunWhenAsked) {
  TempDir dir;
  write_text(dir / "stop.toml", collapsing_config("[callbacks.terminate_on_collapse]\n"));
  TrainRequest r = request(dir / "stop.toml", dir / "run");
  r.epochs = 5;
  const auto [res, out] = train_captured(r);
  EXPECT_EQ(res.status, TrainStatus::early_stopped) << out;
  EXPECT_EQ(res.epochs_done, 1) << out;
  EXPECT_NE(out.find("TerminateOnCollapse: the loss exploded in epoch 1"), std::string::npos) << out;
  EXPECT_EQ(out.find("Training continues"), std::string::npos) << out;
  EXPECT_TRUE(read_checkpoint(dir / "run/last.ckpt").position.finished);
  TrainRequest again = request(dir / "stop.toml", "");
  again.out_dir.reset();
  again.resume = dir / "run";
  const std::string msg = user_error_of([&] { Trainer t(again); });
  EXPECT_NE(msg.find("stopped early (TerminateOnCollapse at epoch 1)"), std::string::npos) << msg;
}

TEST(Trainer, MissingDataFallsBackToTheSampleWithACappedBatch) {
  TempDir dir;
  std::string cfg = tiny_config();
  cfg.replace(cfg.find("path = \""), cfg.find("\"\ndrop_classes") - cfg.find("path = \"") + 1,
              "path = \"" + dir / "no-fer2013-here.csv\"");
  cfg.replace(cfg.find("batch_size = 16"), 15, "batch_size = 128");
  write_text(dir / "fallback.toml", cfg);
  TrainRequest r = request(dir / "fallback.toml", dir / "run");
  r.epochs = 1;
  const auto [res, text] = train_captured(r);
  ASSERT_EQ(res.status, TrainStatus::completed);
  EXPECT_NE(text.find("BUNDLED SAMPLE"), std::string::npos) << text;
  EXPECT_NE(text.find("batch size 128 -> 32"), std::string::npos) << text;
  const auto resolved = fer::models::load_run_config(dir / "run/config.toml");
  EXPECT_EQ(resolved.train.batch_size, 32);
  EXPECT_NE(resolved.data.path.find("data/sample/fer2013_sample.csv"), std::string::npos);
}

TEST(Trainer, FailuresBeforeStepZeroWriteNothing) {
  TempDir dir;
  write_text(dir / "tiny.toml", tiny_config());
  // Missing --data file.
  TrainRequest r = request(dir / "tiny.toml", dir / "run1");
  r.data_path = dir / "nope.csv";
  EXPECT_NE(user_error_of([&] { Trainer t(r); }).find("nope.csv"), std::string::npos);
  EXPECT_FALSE(exists(dir / "run1"));
  // Unknown config key, named with its file and line.
  write_text(dir / "typo.toml", tiny_config("", "learnig_rate = 0.1\n"));
  const std::string typo = user_error_of([&] { Trainer t(request(dir / "typo.toml", dir / "run2")); });
  EXPECT_NE(typo.find("typo.toml:"), std::string::npos) << typo;
  EXPECT_NE(typo.find("learnig_rate"), std::string::npos) << typo;
  EXPECT_FALSE(exists(dir / "run2"));
  // A batch larger than the training split.
  TrainRequest big = request(dir / "tiny.toml", dir / "run3");
  big.batch_size = 1000;
  EXPECT_NE(user_error_of([&] { Trainer t(big); }).find("fewer than one batch"), std::string::npos);
  EXPECT_FALSE(exists(dir / "run3"));
  // --resume of something that is not there.
  TrainRequest ghost = request(dir / "tiny.toml", "");
  ghost.out_dir.reset();
  ghost.resume = dir / "ghost";
  EXPECT_NE(user_error_of([&] { Trainer t(ghost); }).find("--resume"), std::string::npos);
  // --out pointing at an existing run.
  TrainRequest ok = request(dir / "tiny.toml", dir / "run4");
  ok.epochs = 1;
  ASSERT_EQ(train(ok).status, TrainStatus::completed);
  const std::string clash = user_error_of([&] { Trainer t(ok); });
  EXPECT_NE(clash.find("already holds a run"), std::string::npos) << clash;
  // Continuing from best.ckpt into its own run directory would overwrite that run's files.
  TrainRequest from_best = request(dir / "tiny.toml", "");
  from_best.out_dir.reset();
  from_best.resume = dir / "run4/best.ckpt";
  from_best.epochs = 2;
  EXPECT_NE(user_error_of([&] { Trainer t(from_best); }).find("add --out NEW_DIR"), std::string::npos);
  from_best.out_dir = dir / "from_best";
  EXPECT_EQ(train(from_best).status, TrainStatus::completed);
  // A corrupt checkpoint to resume from is refused before anything is touched.
  std::string bytes = read_text(dir / "run4/last.ckpt");
  bytes[bytes.size() / 2] ^= 0x40;
  write_text(dir / "run4/last.ckpt", bytes);
  const std::string history_before = read_text(dir / "run4/history.csv");
  TrainRequest bad = request(dir / "tiny.toml", "");
  bad.out_dir.reset();
  bad.resume = dir / "run4";
  bad.epochs = 2;
  const std::string corrupt = user_error_of([&] { Trainer t(bad); });
  EXPECT_NE(corrupt.find("corrupt"), std::string::npos) << corrupt;
  EXPECT_EQ(read_text(dir / "run4/history.csv"), history_before);
}

TEST(Trainer, ResumeWithAnotherModelIsRefusedNamingBoth) {
  TempDir dir;
  write_text(dir / "tiny.toml", tiny_config());
  std::string other = tiny_config("", "", "wide");
  other.replace(other.find("units = 16"), 10, "units = 32");
  write_text(dir / "wide.toml", other);
  TrainRequest r = request(dir / "tiny.toml", dir / "run");
  r.epochs = 1;
  ASSERT_EQ(train(r).status, TrainStatus::completed);
  const std::string config_before = read_text(dir / "run/config.toml");
  TrainRequest wrong = request(dir / "wide.toml", "");
  wrong.out_dir.reset();
  wrong.resume = dir / "run";
  wrong.epochs = 2;
  const std::string msg = user_error_of([&] { Trainer t(wrong); });
  EXPECT_NE(msg.find("is a checkpoint of tiny"), std::string::npos) << msg;
  EXPECT_NE(msg.find("describes wide"), std::string::npos) << msg;
  EXPECT_EQ(read_text(dir / "run/config.toml"), config_before);
}

}  // namespace
