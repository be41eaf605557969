// Keras semantics of the epoch-end callbacks: ReduceLROnPlateau (patience, cooldown, min_lr,
// min_delta), EarlyStopping (patience, min_delta, restore_best_weights) and the best-checkpoint
// monitor (ModelCheckpoint save_best_only, mode auto/min/max).
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/training/callbacks.h"

namespace {

using fer::training::BestCheckpoint;
using fer::training::EarlyStopping;
using fer::training::EpochRecord;
using fer::training::Monitor;
using fer::training::ReduceLROnPlateau;

EpochRecord epoch_with(int epoch, double val_loss, double val_accuracy = 0.5) {
  EpochRecord r;
  r.epoch = epoch;
  r.loss = val_loss + 0.1;
  r.accuracy = val_accuracy - 0.1;
  r.val_loss = val_loss;
  r.val_accuracy = val_accuracy;
  return r;
}

TEST(Monitor, ModesAndMinDelta) {
  const Monitor acc("val_accuracy", "auto", 0.0);
  EXPECT_TRUE(acc.maximize);
  EXPECT_TRUE(acc.improves(0.6, 0.5));
  EXPECT_FALSE(acc.improves(0.5, 0.5));  // equal is no improvement
  const Monitor loss("val_loss", "auto", 0.1);
  EXPECT_FALSE(loss.maximize);
  EXPECT_TRUE(loss.improves(0.85, 1.0));
  EXPECT_FALSE(loss.improves(0.95, 1.0));  // better, but by less than min_delta
  EXPECT_TRUE(loss.improves(1.0, loss.worst()));
  EXPECT_FALSE(loss.improves(NAN, loss.worst()));  // NaN never improves
  EXPECT_FALSE(Monitor("val_loss", "min", 0.0).maximize);  // explicit modes that agree
  EXPECT_TRUE(Monitor("accuracy", "max", 0.0).maximize);
  // A contradicting mode (the original project's [checkpoint] val_loss + max) is refused, not obeyed.
  EXPECT_THROW(Monitor("val_loss", "max", 0.0), std::invalid_argument);
  EXPECT_THROW(Monitor("val_accuracy", "min", 0.0), std::invalid_argument);
}

TEST(ReduceLROnPlateau, PatienceCooldownAndMinLrAsKeras) {
  fer::models::ReduceLrSpec spec;
  spec.enabled = true;
  spec.monitor = "val_loss";
  spec.factor = 0.5f;
  spec.patience = 2;
  spec.cooldown = 1;
  spec.min_delta = 0.0f;
  spec.min_lr = 0.1f;
  ReduceLROnPlateau cb(spec);
  // Worked through Keras 2.x's on_epoch_end by hand:
  //  e1 improves (best 1.0); e2 wait 1; e3 wait 2 -> lr 0.5, cooldown 1; e4 cooldown ends, wait 1;
  //  e5 wait 2 -> 0.25; e6 improves (0.9); e7 wait 1; e8 wait 2 -> 0.125; e9 wait 1;
  //  e10 wait 2 -> max(0.0625, 0.1) = 0.1; e11 wait 1; e12, e13: lr is at min_lr, no change.
  const double values[] = {1.0, 1.0, 1.0, 1.0, 1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95};
  const float expected[] = {1.0f, 1.0f, 0.5f, 0.5f, 0.25f, 0.25f, 0.25f, 0.125f, 0.125f, 0.1f, 0.1f, 0.1f, 0.1f};
  float lr = 1.0f;
  for (int i = 0; i < 13; ++i) {
    std::string msg;
    const float next = cb.on_epoch_end(epoch_with(i + 1, values[i]), lr, &msg);
    EXPECT_FLOAT_EQ(next, expected[i]) << "after epoch " << i + 1;
    if (next != lr) {
      EXPECT_NE(msg.find("ReduceLROnPlateau"), std::string::npos);
    }
    lr = next;
  }
  EXPECT_EQ(cb.state.wait, 3);  // keeps counting once lr reached min_lr, as Keras does
}

TEST(ReduceLROnPlateau, MinDeltaMakesSmallGainsCountAsPlateau) {
  fer::models::ReduceLrSpec spec;
  spec.enabled = true;
  spec.monitor = "val_accuracy";  // auto -> max
  spec.factor = 0.1f;
  spec.patience = 1;
  spec.min_delta = 0.05f;
  ReduceLROnPlateau cb(spec);
  float lr = 1e-3f;
  lr = cb.on_epoch_end(epoch_with(1, 1.0, 0.50), lr, nullptr);
  EXPECT_FLOAT_EQ(lr, 1e-3f);
  lr = cb.on_epoch_end(epoch_with(2, 1.0, 0.53), lr, nullptr);  // +0.03 < min_delta: plateau
  EXPECT_FLOAT_EQ(lr, 1e-4f);
  lr = cb.on_epoch_end(epoch_with(3, 1.0, 0.60), lr, nullptr);  // +0.10: improvement
  EXPECT_FLOAT_EQ(lr, 1e-4f);
  EXPECT_DOUBLE_EQ(cb.state.best, 0.60);
}

TEST(ReduceLROnPlateau, DisabledLeavesTheRateAlone) {
  ReduceLROnPlateau cb(fer::models::ReduceLrSpec{});
  float lr = 0.01f;
  for (int e = 1; e <= 30; ++e) lr = cb.on_epoch_end(epoch_with(e, 1.0), lr, nullptr);
  EXPECT_EQ(lr, 0.01f);
}

TEST(EarlyStopping, StopsAfterPatienceAndRestoresTheBestEpoch) {
  fer::models::EarlyStoppingSpec spec;
  spec.enabled = true;
  spec.monitor = "val_loss";
  spec.patience = 2;
  spec.restore_best_weights = true;
  EarlyStopping cb(spec);
  const double values[] = {1.0, 0.8, 0.9, 0.85, 0.7};
  int stopped_at = 0;
  bool restore = false;
  for (int i = 0; i < 5 && !stopped_at; ++i) {
    std::string msg;
    const bool stop = cb.on_epoch_end(
        epoch_with(i + 1, values[i]),
        [&](std::vector<float>& p, std::vector<float>& s) {
          p.assign(3, float(i + 1));  // "weights" tagged with their epoch
          s.assign(1, float(i + 1));
        },
        &restore, &msg);
    if (stop) {
      stopped_at = i + 1;
      EXPECT_NE(msg.find("restoring the weights of epoch 2"), std::string::npos) << msg;
    }
  }
  EXPECT_EQ(stopped_at, 4);  // 0.9 and 0.85 do not beat 0.8: two epochs without improvement
  EXPECT_TRUE(restore);
  EXPECT_EQ(cb.state.best_epoch, 2);
  EXPECT_EQ(cb.state.stopped_epoch, 4);
  EXPECT_EQ(cb.state.best_params, std::vector<float>(3, 2.0f));
  EXPECT_EQ(cb.state.best_state, std::vector<float>(1, 2.0f));
}

TEST(EarlyStopping, PatienceZeroStopsAtTheFirstPlateauAndMinDeltaCounts) {
  fer::models::EarlyStoppingSpec spec;
  spec.enabled = true;
  spec.monitor = "val_accuracy";
  spec.patience = 0;
  spec.min_delta = 0.01f;
  EarlyStopping cb(spec);
  bool restore = true;
  auto none = [](std::vector<float>&, std::vector<float>&) { FAIL() << "weights fetched without restore_best_weights"; };
  EXPECT_FALSE(cb.on_epoch_end(epoch_with(1, 1.0, 0.50), none, &restore, nullptr));
  EXPECT_FALSE(cb.on_epoch_end(epoch_with(2, 1.0, 0.52), none, &restore, nullptr));
  EXPECT_TRUE(cb.on_epoch_end(epoch_with(3, 1.0, 0.525), none, &restore, nullptr));  // +0.005 < min_delta
  EXPECT_FALSE(restore);
  EXPECT_EQ(cb.state.stopped_epoch, 3);
}

TEST(BestCheckpoint, SavesOnStrictImprovementOnly) {
  fer::models::CheckpointSpec spec;  // val_accuracy, max
  BestCheckpoint best(spec);
  EXPECT_TRUE(best.on_epoch_end(epoch_with(1, 1.0, 0.5)));
  EXPECT_FALSE(best.on_epoch_end(epoch_with(2, 1.0, 0.5)));
  EXPECT_FALSE(best.on_epoch_end(epoch_with(3, 1.0, 0.4)));
  EXPECT_TRUE(best.on_epoch_end(epoch_with(4, 1.0, 0.6)));
  EXPECT_EQ(best.state.best_epoch, 4);

  fer::models::CheckpointSpec loss_spec;
  loss_spec.monitor = "val_loss";
  loss_spec.mode = "auto";  // -> min
  BestCheckpoint by_loss(loss_spec);
  EXPECT_TRUE(by_loss.on_epoch_end(epoch_with(1, 1.0)));
  EXPECT_FALSE(by_loss.on_epoch_end(epoch_with(2, 1.2)));
  EXPECT_TRUE(by_loss.on_epoch_end(epoch_with(3, 0.9)));
  EXPECT_FALSE(by_loss.on_epoch_end(epoch_with(4, NAN)));
}

// The callbacks built from a config whose modes are left out follow the monitor: [checkpoint]
// monitor = "val_loss" alone keeps the lowest val_loss (before the fix its default mode "max" kept
// the worst epoch), ReduceLROnPlateau on val_accuracy waits for a rise, EarlyStopping on loss for a fall.
TEST(Callbacks, ModesInferredFromTheConfigsMonitors) {
  const std::string text = R"([model]
name = "tiny"
classes = 6

[data]
drop_classes = [1]

[checkpoint]
monitor = "val_loss"

[callbacks.reduce_lr_on_plateau]
monitor = "val_accuracy"
patience = 1
factor = 0.5
min_delta = 0.0

[callbacks.early_stopping]
monitor = "loss"
patience = 1

[[layers]]
type = "Flatten"

[[layers]]
type = "Dense"
units = 6
activation = "softmax"
)";
  const fer::models::RunConfig run = fer::models::parse_run_config(text, "inferred.toml");

  BestCheckpoint best(run.checkpoint);
  EXPECT_FALSE(best.monitor().maximize);
  EXPECT_TRUE(best.on_epoch_end(epoch_with(1, 1.0)));
  EXPECT_FALSE(best.on_epoch_end(epoch_with(2, 3.0)));  // a worse val_loss is not "improved"
  EXPECT_TRUE(best.on_epoch_end(epoch_with(3, 0.5)));
  EXPECT_EQ(best.state.best_epoch, 3);

  ReduceLROnPlateau lr(run.reduce_lr);
  EXPECT_TRUE(lr.monitor().maximize);
  EXPECT_EQ(lr.on_epoch_end(epoch_with(1, 1.0, 0.5), 1.0f, nullptr), 1.0f);
  EXPECT_EQ(lr.on_epoch_end(epoch_with(2, 1.0, 0.6), 1.0f, nullptr), 1.0f);  // accuracy rose: improved
  EXPECT_EQ(lr.on_epoch_end(epoch_with(3, 1.0, 0.4), 1.0f, nullptr), 0.5f);  // fell: plateau, reduced

  EarlyStopping es(run.early_stopping);
  EXPECT_FALSE(es.monitor().maximize);
  auto none = [](std::vector<float>&, std::vector<float>&) {};
  bool restore = false;
  EXPECT_FALSE(es.on_epoch_end(epoch_with(1, 1.0), none, &restore, nullptr));  // loss 1.1
  EXPECT_FALSE(es.on_epoch_end(epoch_with(2, 0.5), none, &restore, nullptr));  // loss 0.6: improved
  EXPECT_TRUE(es.on_epoch_end(epoch_with(3, 0.9), none, &restore, nullptr));   // loss 1.0: stop
}

}  // namespace
