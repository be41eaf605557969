#pragma once
// Console output of a training run, Keras style. On a terminal: one progress bar per epoch,
// redrawn in place (steps, ETA, running loss and accuracy), replaced at the end by the epoch's
// summary line. Otherwise (a pipe, a log file): no bar, an occasional plain progress line for long
// epochs, then the same summary line:
//   Epoch 3/50  220/220  38.2s  loss 1.2345  accuracy 0.5234  val_loss 1.1234  val_accuracy 0.5612  lr 0.001  741 img/s
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

#include "engine/training/history.h"

namespace fer::training {

class Progress {
 public:
  // out: where to write (null: silent). tty: draw the bar in place.
  Progress(std::FILE* out, bool tty);

  void begin_epoch(int epoch, int epochs, int64_t steps, int64_t first_step = 0);
  // After step `done` (1-based count of steps of this epoch); running metrics of the epoch so far
  // (NaN when not known yet).
  void step(int64_t done, double running_loss, double running_accuracy);
  void validating();
  // The epoch's summary line (and any notes, one per line).
  void end_epoch(const EpochRecord& record, const std::string& note = "");
  // A line of text outside the bar (clears the bar first).
  void line(const std::string& text);
  // Leaves a bar in progress (interrupt, error) so following output starts on a fresh line.
  void abandon();

  static bool stdout_is_tty();

 private:
  void draw(bool force);
  void clear_bar();

  std::FILE* out_;
  bool tty_;
  int epoch_ = 0, epochs_ = 0;
  int64_t steps_ = 0, done_ = 0, first_ = 0;
  double loss_ = 0, accuracy_ = 0;
  bool bar_shown_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

// "Epoch 3/50  220/220  38.2s  loss ... img/s", then "  loss exploded" and/or
// "  predicts only: happy" when the record carries those collapse signs (collapse.h).
std::string epoch_summary(const EpochRecord& r, int epochs);

}  // namespace fer::training
