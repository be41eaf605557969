#include "engine/training/collapse.h"

#include <cmath>
#include <cstdio>
#include <utility>

namespace fer::training {

namespace {
std::string num(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}
}  // namespace

double loss_explosion_threshold(int classes) { return kLossExplosionFactor * std::log(double(classes)); }

std::vector<int64_t> predicted_class_counts(const std::vector<int32_t>& predicted, int classes) {
  std::vector<int64_t> counts(size_t(classes > 0 ? classes : 0), 0);
  for (int32_t p : predicted)
    if (p >= 0 && p < classes) ++counts[size_t(p)];
  return counts;
}

CollapseWatch::CollapseWatch(const models::TerminateOnCollapseSpec& spec, std::vector<std::string> class_names,
                             std::string config_path)
    : spec_(spec), class_names_(std::move(class_names)), config_path_(std::move(config_path)) {}

void CollapseWatch::mark(EpochRecord& rec, const std::vector<int32_t>& predicted) const {
  const int classes = int(class_names_.size());
  const double limit = loss_explosion_threshold(classes);
  rec.loss_exploded = (std::isfinite(rec.loss) && rec.loss > limit) || (std::isfinite(rec.val_loss) && rec.val_loss > limit);
  const std::vector<int64_t> counts = predicted_class_counts(predicted, classes);
  rec.val_predicted_classes = 0;
  rec.val_only_class.clear();
  int only = -1;
  for (int c = 0; c < classes; ++c) {
    if (counts[size_t(c)] == 0) continue;
    ++rec.val_predicted_classes;
    only = c;
  }
  if (rec.val_predicted_classes == 1) rec.val_only_class = class_names_[size_t(only)];
}

CollapseReport CollapseWatch::check(const EpochRecord& rec, const std::vector<EpochRecord>& earlier) const {
  CollapseReport out;
  bool exploded_before = false, single_before = false;
  for (const EpochRecord& e : earlier) {
    exploded_before = exploded_before || e.loss_exploded;
    single_before = single_before || e.val_predicted_classes == 1;
  }
  const std::string epoch = std::to_string(rec.epoch);
  const std::string lr = num("%g", rec.lr);
  const std::string continues =
      spec_.enabled ? std::string()
                    : " Training continues; add [callbacks.terminate_on_collapse] to " + config_path_ + " to stop on this.";
  const int classes = int(class_names_.size());
  if (rec.loss_exploded && !exploded_before) {
    out.warnings.push_back("Warning: the loss exploded in epoch " + epoch + ": training loss " + num("%.4g", rec.loss) +
                           ", validation loss " + num("%.4g", rec.val_loss) + ", more than " +
                           num("%g", kLossExplosionFactor) + " times the " +
                           num("%.3g", std::log(double(classes))) + " (ln " + std::to_string(classes) +
                           ") an untrained model starts at, though still finite. The likely cause is a learning rate "
                           "far too high (this epoch used " + lr + ": [train] learning_rate in " + config_path_ +
                           "; Adam's usual rate is 0.001). Lower it and train again." + continues);
  }
  if (rec.val_predicted_classes == 1 && !single_before) {
    out.warnings.push_back("Warning: in epoch " + epoch + " the model predicts one class, " + rec.val_only_class +
                           ", for every validation image (val_accuracy " + num("%.4f", rec.val_accuracy) + " is " +
                           rec.val_only_class + "'s share of them): it has learned nothing beyond answering one "
                           "class. In the first epochs this can be a slow start that ends soon; if it persists, the "
                           "likely cause is the learning rate (this epoch used " + lr + ": [train] learning_rate in " +
                           config_path_ + ")." + continues);
  }
  if (!spec_.enabled) return out;
  if (spec_.loss_explosion && rec.loss_exploded) {
    out.stop = true;
    out.stop_message = "TerminateOnCollapse: the loss exploded in epoch " + epoch + " (training " +
                       num("%.4g", rec.loss) + ", validation " + num("%.4g", rec.val_loss) + "); stopping";
    return out;
  }
  if (spec_.single_class_patience > 0 && rec.val_predicted_classes == 1) {
    int run = 1;  // consecutive single-class epochs ending with rec
    for (auto it = earlier.rbegin(); it != earlier.rend() && it->val_predicted_classes == 1; ++it) ++run;
    if (run >= spec_.single_class_patience) {
      out.stop = true;
      out.stop_message = "TerminateOnCollapse: the model predicted a single class for " + std::to_string(run) +
                         " consecutive epochs (now only " + rec.val_only_class + "); stopping";
    }
  }
  return out;
}

std::string CollapseWatch::collapsed_note(const EpochRecord& rec) {
  std::string signs;
  if (rec.loss_exploded) signs = "the loss exploded";
  if (rec.val_predicted_classes == 1) {
    signs += (signs.empty() ? "" : " and ") + std::string("the model predicts only ") + rec.val_only_class;
  }
  return signs.empty() ? "" : " - but this epoch has collapsed (" + signs + "), not learned";
}

}  // namespace fer::training
