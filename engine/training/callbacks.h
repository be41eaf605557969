#pragma once
// Keras' epoch-end callbacks with their semantics, and the "best checkpoint" monitor:
//
//  * Monitor: a quantity ("loss", "accuracy", "val_loss", "val_accuracy") with a mode (min/max;
//    "auto" resolves to max for accuracies, min for losses; a contradicting explicit mode throws
//    std::invalid_argument, parse_run_config having refused it already) and min_delta. An epoch improves on `best` when
//    current - min_delta > best (max) or current + min_delta < best (min). NaN never improves.
//  * BestCheckpoint: ModelCheckpoint(save_best_only=True): improvement without min_delta.
//  * ReduceLROnPlateau (Keras 2.x): in cooldown the counter counts down and wait is reset; an
//    improvement resets wait; otherwise, outside cooldown, wait grows and at `patience` the rate
//    becomes max(lr * factor, min_lr) (only while lr > min_lr), cooldown restarts, wait resets.
//  * EarlyStopping (tf.keras 2.x, the original project's era): an improvement records best (and
//    the weights when restore_best_weights) and resets wait; otherwise wait grows and at
//    `patience` training stops, restoring the best epoch's weights when asked. As in tf.keras 2.x
//    the weights are restored only when the callback stops training, not at a normal end.
//
// All state is plain data so checkpoints can carry it and a resumed run continues exactly.
#include <cstdint>
#include <string>
#include <vector>

#include "engine/training/history.h"
#include "models/run_config.h"

namespace fer::training {

struct Monitor {
  std::string quantity = "val_accuracy";
  bool maximize = true;
  double min_delta = 0.0;

  Monitor() = default;
  Monitor(std::string quantity, const std::string& mode, double min_delta);
  double worst() const;  // -inf for max, +inf for min: the initial "best"
  bool improves(double current, double best) const;
  std::string mode() const { return maximize ? "max" : "min"; }
};

struct BestCheckpointState {
  double best = 0.0;
  int best_epoch = 0;  // 1-based; 0 = none yet
};

class BestCheckpoint {
 public:
  explicit BestCheckpoint(const models::CheckpointSpec& spec);
  // True when this epoch is the new best (save best.ckpt now).
  bool on_epoch_end(const EpochRecord& logs);
  const Monitor& monitor() const { return monitor_; }
  BestCheckpointState state;

 private:
  Monitor monitor_;
};

struct ReduceLrState {
  double best = 0.0;
  int wait = 0;
  int cooldown_counter = 0;
};

class ReduceLROnPlateau {
 public:
  explicit ReduceLROnPlateau(const models::ReduceLrSpec& spec);
  bool enabled() const { return spec_.enabled; }
  // Returns the learning rate for the next epoch; *message says when it changed.
  float on_epoch_end(const EpochRecord& logs, float lr, std::string* message);
  const Monitor& monitor() const { return monitor_; }
  ReduceLrState state;

 private:
  models::ReduceLrSpec spec_;
  Monitor monitor_;
};

struct EarlyStoppingState {
  double best = 0.0;
  int wait = 0;
  int best_epoch = 0;     // 1-based; 0 = none yet
  int stopped_epoch = 0;  // 1-based epoch at which training stopped; 0 = not stopped
  bool has_best_weights = false;
  std::vector<float> best_params, best_state;  // with restore_best_weights
};

class EarlyStopping {
 public:
  explicit EarlyStopping(const models::EarlyStoppingSpec& spec);
  bool enabled() const { return spec_.enabled; }
  bool restores_best_weights() const { return spec_.enabled && spec_.restore_best_weights; }
  // Called after each epoch. `improved_weights` is invoked to fetch the current weights when they
  // must be remembered (restore_best_weights and an improvement). Returns true to stop training;
  // when the best weights are to be restored, *restore is set and state holds them.
  template <typename GetWeights>
  bool on_epoch_end(const EpochRecord& logs, GetWeights&& get_weights, bool* restore, std::string* message);
  const Monitor& monitor() const { return monitor_; }
  EarlyStoppingState state;

 private:
  bool decide(const EpochRecord& logs, bool* remember, bool* restore, std::string* message);
  models::EarlyStoppingSpec spec_;
  Monitor monitor_;
};

template <typename GetWeights>
bool EarlyStopping::on_epoch_end(const EpochRecord& logs, GetWeights&& get_weights, bool* restore,
                                 std::string* message) {
  bool remember = false;
  const bool stop = decide(logs, &remember, restore, message);
  if (remember) {
    get_weights(state.best_params, state.best_state);
    state.has_best_weights = true;
  }
  return stop;
}

}  // namespace fer::training
