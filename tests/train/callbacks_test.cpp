// Keras semantics of the epoch-end callbacks: ReduceLROnPlateau (patience, cooldown, min_lr,
// min_delta), EarlyStopping (patience, min_delta, restore_best_weights) and the best-checkpoint
// monitor (ModelCheckpoint save_best_only, mode auto/min/max).
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/training/callbacks.h"
#include "engine/training/collapse.h"
#include "engine/training/progress.h"

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

// ---- collapse signs (engine/training/collapse.h) ----

using fer::training::CollapseReport;
using fer::training::CollapseWatch;

const std::vector<std::string> kSix{"angry", "fear", "happy", "sad", "surprise", "neutral"};

TEST(Collapse, ThresholdAndPerClassCounts) {
  EXPECT_DOUBLE_EQ(fer::training::loss_explosion_threshold(6), 100.0 * std::log(6.0));
  EXPECT_EQ(fer::training::predicted_class_counts({2, 2, 0, 5, 2, -1, 6}, 6),
            (std::vector<int64_t>{1, 0, 3, 0, 0, 1}));  // -1 and 6 are out of range: ignored
}

TEST(Collapse, MarksExplodedLossAndSingleClassPredictions) {
  CollapseWatch watch({}, kSix, "m.toml");
  EpochRecord r = epoch_with(1, 1.0);
  r.loss = 1.79;
  watch.mark(r, {0, 2, 2, 3});
  EXPECT_FALSE(r.loss_exploded);
  EXPECT_EQ(r.val_predicted_classes, 3);
  EXPECT_EQ(r.val_only_class, "");

  r.loss = 1e30;  // lr 1000: finite, far above 100 * ln 6
  watch.mark(r, {2, 2, 2, 2});
  EXPECT_TRUE(r.loss_exploded);
  EXPECT_EQ(r.val_predicted_classes, 1);
  EXPECT_EQ(r.val_only_class, "happy");

  r.loss = 100.0 * std::log(6.0) * 0.99;  // just under the threshold
  watch.mark(r, {1, 2});
  EXPECT_FALSE(r.loss_exploded);
  r.val_loss = 6e13;  // the training loss recovered, the validation loss did not: still exploded
  watch.mark(r, {1, 2});
  EXPECT_TRUE(r.loss_exploded);
  r.val_loss = 1.0;
  r.loss = INFINITY;  // a non-finite loss is "diverged" (the run stops), not an explosion
  watch.mark(r, {1, 2});
  EXPECT_FALSE(r.loss_exploded);
  r.loss = NAN;
  watch.mark(r, {1, 2});
  EXPECT_FALSE(r.loss_exploded);
}

TEST(Collapse, WarnsOncePerSignNamingTheLearningRateAndKeepsTraining) {
  CollapseWatch watch({}, kSix, "m.toml");
  std::vector<EpochRecord> history;
  EpochRecord e1 = epoch_with(1, 1.0, 0.25);
  e1.loss = 3e29;
  e1.lr = 1000;
  watch.mark(e1, {2, 2, 2, 2});
  const CollapseReport first = watch.check(e1, history);
  ASSERT_EQ(first.warnings.size(), 2u);
  EXPECT_NE(first.warnings[0].find("the loss exploded in epoch 1: training loss 3e+29"), std::string::npos) << first.warnings[0];
  EXPECT_NE(first.warnings[0].find("learning rate"), std::string::npos) << first.warnings[0];
  EXPECT_NE(first.warnings[0].find("this epoch used 1000"), std::string::npos) << first.warnings[0];
  EXPECT_NE(first.warnings[0].find("Training continues"), std::string::npos) << first.warnings[0];
  EXPECT_NE(first.warnings[1].find("predicts one class, happy, for every validation image"), std::string::npos)
      << first.warnings[1];
  EXPECT_NE(first.warnings[1].find("val_accuracy 0.2500 is happy's share"), std::string::npos) << first.warnings[1];
  EXPECT_NE(first.warnings[1].find("learning rate"), std::string::npos) << first.warnings[1];
  EXPECT_FALSE(first.stop);
  history.push_back(e1);

  EpochRecord e2 = e1;  // the same signs again: no second warning
  e2.epoch = 2;
  EXPECT_TRUE(watch.check(e2, history).warnings.empty());
  history.push_back(e2);

  // Only the sign not seen before is warned about.
  std::vector<EpochRecord> only_single{e1};
  only_single[0].loss_exploded = false;
  const CollapseReport later = watch.check(e2, only_single);
  ASSERT_EQ(later.warnings.size(), 1u);
  EXPECT_NE(later.warnings[0].find("loss exploded in epoch 2"), std::string::npos) << later.warnings[0];

  // A healthy epoch: nothing to say.
  EpochRecord ok = epoch_with(3, 1.0, 0.4);
  watch.mark(ok, {0, 1, 2});
  EXPECT_TRUE(watch.check(ok, {}).warnings.empty());
  EXPECT_EQ(CollapseWatch::collapsed_note(ok), "");
  EXPECT_NE(CollapseWatch::collapsed_note(e1).find("collapsed (the loss exploded and the model predicts only happy)"),
            std::string::npos)
      << CollapseWatch::collapsed_note(e1);
}

TEST(Collapse, TerminateOnCollapseStopsWhenAsked) {
  fer::models::TerminateOnCollapseSpec spec;
  spec.enabled = true;  // loss_explosion = true by default
  CollapseWatch on_loss(spec, kSix, "m.toml");
  EpochRecord e = epoch_with(1, 1.0);
  e.loss = 1e30;
  on_loss.mark(e, {0, 1});
  const CollapseReport r = on_loss.check(e, {});
  EXPECT_TRUE(r.stop);
  EXPECT_NE(r.stop_message.find("TerminateOnCollapse: the loss exploded in epoch 1"), std::string::npos)
      << r.stop_message;
  EXPECT_EQ(r.warnings[0].find("Training continues"), std::string::npos) << "it does not: " << r.warnings[0];

  spec.loss_explosion = false;
  spec.single_class_patience = 2;
  CollapseWatch on_class(spec, kSix, "m.toml");
  EXPECT_FALSE(on_class.check(e, {}).stop);  // exploded, but that is not asked for
  std::vector<EpochRecord> history;
  for (int epoch = 1; epoch <= 4; ++epoch) {
    EpochRecord x = epoch_with(epoch, 1.0);
    // epochs 1 and 3 single-class, 2 mixed, 4 single-class again: 3+4 are two in a row
    on_class.mark(x, epoch == 2 ? std::vector<int32_t>{0, 1} : std::vector<int32_t>{3, 3});
    const CollapseReport c = on_class.check(x, history);
    EXPECT_EQ(c.stop, epoch == 4) << "epoch " << epoch;
    history.push_back(x);
  }
}

TEST(Collapse, EpochLineShowsTheSingleClassAndTheExplosion) {
  EpochRecord r = epoch_with(2, 1.0, 0.25);
  EXPECT_EQ(fer::training::epoch_summary(r, 5).find("predicts only"), std::string::npos);
  r.val_predicted_classes = 1;  // forced, as mark() sets it for all-"happy" predictions
  r.val_only_class = "happy";
  r.loss = 1e30;
  r.loss_exploded = true;
  const std::string line = fer::training::epoch_summary(r, 5);
  EXPECT_NE(line.find("  predicts only: happy"), std::string::npos) << line;
  EXPECT_NE(line.find("  loss exploded"), std::string::npos) << line;
  EXPECT_NE(line.find("loss 1e+30  accuracy"), std::string::npos) << "not 31 digits: " << line;
}

}  // namespace
