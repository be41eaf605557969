#pragma once
// Per-epoch metrics of a run, as Keras' History/CSVLogger keep them, written as history.csv and
// history.json in the run directory and carried inside every checkpoint (so a resumed run
// continues the same history). Epochs are numbered from 1, as the progress lines print them.
// The metric columns are a pure function of the run's seed and data (bit-identical between a
// straight run and a resumed one on the CPU); the timing columns are wall-clock measurements.
#include <cstdint>
#include <string>
#include <vector>

namespace fer::training {

struct EpochRecord {
  int epoch = 0;  // 1-based
  double loss = 0.0, accuracy = 0.0;
  double val_loss = 0.0, val_accuracy = 0.0;
  double lr = 0.0;  // learning rate used during the epoch
  int64_t steps = 0;
  int64_t train_images = 0;
  double seconds = 0.0;        // training + validation
  double train_seconds = 0.0;  // the training steps only
  double val_seconds = 0.0;
  // Time the training steps waited for their data: the batch stream's stall (next() waiting for
  // the loader thread) or, with the data resident on the backend, the host time spent on the
  // epoch's order and on enqueuing the gathers (about 0).
  double loader_stall_seconds = 0.0;
  // Signs of a collapsed run (engine/training/collapse.h): how many distinct classes the epoch's
  // validation predictions use (0: not recorded, e.g. a checkpoint written before this field),
  // the class's name when that is 1 ("predicts only: happy"), and whether the mean training loss
  // exploded (finite, but above collapse.h's threshold).
  int val_predicted_classes = 0;
  std::string val_only_class;
  bool loss_exploded = false;
  double images_per_second() const { return train_seconds > 0 ? double(train_images) / train_seconds : 0.0; }

  // "loss", "accuracy", "val_loss", "val_accuracy"; throws std::invalid_argument otherwise.
  double metric(const std::string& name) const;
};

struct History {
  std::vector<EpochRecord> epochs;

  // epoch,loss,accuracy,val_loss,val_accuracy,lr,steps,seconds,train_seconds,val_seconds,
  // images_per_second,loader_stall_seconds,val_predicted_classes,val_only_class,loss_exploded
  // (val_only_class empty unless the predictions use one class; loss_exploded 0 or 1).
  std::string to_csv() const;
  // {"columns": [...], "epochs": [{...}, ...]} (nlohmann/json, two-space indent); NaN/Inf as null,
  // text escaped as RFC 8259 asks (invalid UTF-8 replaced by U+FFFD).
  std::string to_json() const;
};

}  // namespace fer::training
