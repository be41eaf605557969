#pragma once
// Signs that training has collapsed while its loss is still finite, so the epoch line cannot look
// like progress (a non-finite loss already stops the run as "diverged"). Two signs, each decided
// once per epoch on the host from numbers the epoch already has (the mean training loss the
// trainer reads once per epoch on CUDA, and the validation pass's per-row predictions, which it
// already downloads for the report): nothing is added to the training steps.
//
//  * Loss explosion: the epoch's mean training loss or its validation loss is finite and more
//    than kLossExplosionFactor (100: two orders of magnitude) times ln(classes). ln(classes) is the
//    categorical cross-entropy of the uniform prediction that a freshly initialised network
//    (glorot kernels, zero biases: nearly equal logits) makes at its first step, i.e. the loss's
//    first value, whatever the run's history, resuming, or how many steps the CPU and CUDA paths
//    read metrics over; a model that learned only the class prior is below it. 100 x ln(6) = 179
//    means the true class got a probability of about e^-179 on average, where working runs of these
//    models stay under 2 (training) and 5 (validation, overfitted). The validation loss counts too:
//    with learning rate 1000 on the bundled sample the training loss falls back to ~800 by epoch 4
//    while the validation loss stays at 6e13 (on FER2013 the loss reaches about 1e30).
//  * Single class: every validation prediction is the same class, so val_accuracy equals that
//    class's share of the validation rows: the model has learned nothing beyond answering one class
//    (the class prior when it is the most frequent one). Exact, not a threshold.
//
// Each sign is warned about once per run (a resumed run reads the earlier epochs' signs from its
// history), naming the likely cause (the learning rate) and what to change. Training continues
// unless [callbacks.terminate_on_collapse] asks to stop (models/run_config.h).
#include <cstdint>
#include <string>
#include <vector>

#include "engine/training/history.h"
#include "models/run_config.h"

namespace fer::training {

constexpr double kLossExplosionFactor = 100.0;

// The mean loss (training or validation) above which an epoch's loss counts as exploded:
// kLossExplosionFactor * ln(classes). classes >= 2.
double loss_explosion_threshold(int classes);

// Predictions per class: out[c] = number of entries of `predicted` equal to c (entries outside
// [0, classes) are ignored). Length `classes`.
std::vector<int64_t> predicted_class_counts(const std::vector<int32_t>& predicted, int classes);

// What the watch has to say after an epoch.
struct CollapseReport {
  std::vector<std::string> warnings;  // new warnings (each kind once per run), one paragraph each
  bool stop = false;                  // [callbacks.terminate_on_collapse] asks to stop now
  std::string stop_message;           // why, when stop
};

class CollapseWatch {
 public:
  // class_names: one per model class (names the single class). config_path: named in the advice.
  CollapseWatch(const models::TerminateOnCollapseSpec& spec, std::vector<std::string> class_names,
                std::string config_path);

  // Sets rec.loss_exploded, rec.val_predicted_classes and rec.val_only_class from rec.loss,
  // rec.val_loss and the epoch's validation predictions (class ids, one per validation row).
  void mark(EpochRecord& rec, const std::vector<int32_t>& predicted) const;

  // After mark(): the warnings due for `rec` given the run's `earlier` epochs (those before rec;
  // a sign shown in any of them was warned about already), and whether to stop.
  CollapseReport check(const EpochRecord& rec, const std::vector<EpochRecord>& earlier) const;

  // The note for the best-checkpoint line when `rec` has collapsed ("" when it has not): saving
  // continues, but an "improvement" of a collapsed epoch must not read as all being well.
  static std::string collapsed_note(const EpochRecord& rec);

 private:
  models::TerminateOnCollapseSpec spec_;
  std::vector<std::string> class_names_;
  std::string config_path_;
};

}  // namespace fer::training
