#include "engine/training/progress.h"

#include <unistd.h>

#include <cmath>

#include "engine/training/fileio.h"

namespace fer::training {

namespace {
constexpr int kBarWidth = 28;
double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}
}  // namespace

Progress::Progress(std::FILE* out, bool tty) : out_(out), tty_(tty && out != nullptr) {}

bool Progress::stdout_is_tty() { return ::isatty(STDOUT_FILENO) == 1; }

void Progress::begin_epoch(int epoch, int epochs, int64_t steps, int64_t first_step) {
  epoch_ = epoch;
  epochs_ = epochs;
  steps_ = steps;
  done_ = first_step;
  first_ = first_step;
  loss_ = accuracy_ = NAN;
  start_ = last_draw_ = std::chrono::steady_clock::now();
  if (!out_) return;
  if (tty_) {
    draw(true);
  } else if (first_step > 0) {
    std::fprintf(out_, "Epoch %d/%d: resuming after step %lld/%lld\n", epoch, epochs,
                 static_cast<long long>(first_step), static_cast<long long>(steps));
    std::fflush(out_);
  }
}

void Progress::step(int64_t done, double running_loss, double running_accuracy) {
  done_ = done;
  if (!std::isnan(running_loss)) {
    loss_ = running_loss;
    accuracy_ = running_accuracy;
  }
  if (!out_) return;
  const double since = seconds_since(last_draw_);
  if (tty_) {
    if (since >= 0.1 || done == steps_) draw(false);
  } else if (since >= 30.0 && done < steps_) {
    // Plain output: a line every 30 s for long epochs only.
    last_draw_ = std::chrono::steady_clock::now();
    const double elapsed = seconds_since(start_);
    const double eta = done > first_ ? elapsed / double(done - first_) * double(steps_ - done) : NAN;
    std::fprintf(out_, "Epoch %d/%d  %lld/%lld  ETA %s  loss %.4f  accuracy %.4f\n", epoch_, epochs_,
                 static_cast<long long>(done), static_cast<long long>(steps_), format_duration(eta).c_str(),
                 loss_, accuracy_);
    std::fflush(out_);
  }
}

void Progress::validating() {
  if (!out_ || !tty_) return;
  clear_bar();
  std::fprintf(out_, "Epoch %d/%d  %lld/%lld  validating...", epoch_, epochs_, static_cast<long long>(done_),
               static_cast<long long>(steps_));
  bar_shown_ = true;
  std::fflush(out_);
}

void Progress::draw(bool force) {
  last_draw_ = std::chrono::steady_clock::now();
  const double elapsed = seconds_since(start_);
  const double eta = done_ > first_ ? elapsed / double(done_ - first_) * double(steps_ - done_) : NAN;
  const int filled = steps_ ? int(double(kBarWidth) * double(done_) / double(steps_)) : 0;
  std::string bar(size_t(kBarWidth), '.');
  for (int i = 0; i < filled && i < kBarWidth; ++i) bar[size_t(i)] = '=';
  if (filled < kBarWidth) bar[size_t(filled)] = '>';
  char metrics[96] = "";
  if (!std::isnan(loss_)) std::snprintf(metrics, sizeof metrics, "  loss %.4f  accuracy %.4f", loss_, accuracy_);
  std::fprintf(out_, "\r\033[2KEpoch %d/%d [%s] %lld/%lld  ETA %s%s", epoch_, epochs_, bar.c_str(),
               static_cast<long long>(done_), static_cast<long long>(steps_),
               std::isnan(eta) ? "-" : format_duration(eta).c_str(), metrics);
  std::fflush(out_);
  bar_shown_ = true;
  (void)force;
}

void Progress::clear_bar() {
  if (bar_shown_ && out_ && tty_) std::fputs("\r\033[2K", out_);
  bar_shown_ = false;
}

namespace {
// Four decimals as Keras prints losses, but an exploded loss (1e30) as "1e+30", not 31 digits.
std::string loss_text(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, std::fabs(v) < 1e5 ? "%.4f" : "%.4g", v);
  return buf;
}
}  // namespace

std::string epoch_summary(const EpochRecord& r, int epochs) {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "Epoch %d/%d  %lld steps  %s  loss %s  accuracy %.4f  val_loss %s  val_accuracy %.4f  "
                "lr %.3g  %.0f img/s",
                r.epoch, epochs, static_cast<long long>(r.steps), format_duration(r.seconds).c_str(),
                loss_text(r.loss).c_str(), r.accuracy, loss_text(r.val_loss).c_str(), r.val_accuracy, r.lr,
                r.images_per_second());
  std::string line = buf;
  // Collapse signs (collapse.h) on every epoch they hold, so a stalled or collapsed run never reads
  // like progress.
  if (r.loss_exploded) line += "  loss exploded";
  if (r.val_predicted_classes == 1) line += "  predicts only: " + r.val_only_class;
  return line;
}

void Progress::end_epoch(const EpochRecord& record, const std::string& note) {
  if (!out_) return;
  clear_bar();
  std::fprintf(out_, "%s\n", epoch_summary(record, epochs_).c_str());
  if (!note.empty()) std::fprintf(out_, "%s\n", note.c_str());
  std::fflush(out_);
}

void Progress::line(const std::string& text) {
  if (!out_) return;
  clear_bar();
  std::fprintf(out_, "%s\n", text.c_str());
  std::fflush(out_);
}

void Progress::abandon() {
  if (!out_) return;
  if (bar_shown_ && tty_) std::fputs("\n", out_);
  bar_shown_ = false;
  std::fflush(out_);
}

}  // namespace fer::training
