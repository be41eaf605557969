#include "engine/training/history.h"

#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "engine/training/fileio.h"

namespace fer::training {

double EpochRecord::metric(const std::string& name) const {
  if (name == "loss") return loss;
  if (name == "accuracy") return accuracy;
  if (name == "val_loss") return val_loss;
  if (name == "val_accuracy") return val_accuracy;
  throw std::invalid_argument("unknown metric '" + name + "'");
}

namespace {
// RFC 4180 quoting for a text field (a class name from an image folder may hold a comma or quote).
std::string csv_text(const std::string& v) {
  if (v.find_first_of(",\"\r\n") == std::string::npos) return v;
  std::string out = "\"";
  for (char c : v) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string json_text(const std::string& v) {
  std::string out = "\"";
  for (unsigned char c : v) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += char(c);
    }
  }
  return out + "\"";
}
}  // namespace

std::string History::to_csv() const {
  std::string out =
      "epoch,loss,accuracy,val_loss,val_accuracy,lr,steps,seconds,train_seconds,val_seconds,"
      "images_per_second,loader_stall_seconds,val_predicted_classes,val_only_class,loss_exploded\n";
  for (const EpochRecord& e : epochs) {
    out += std::to_string(e.epoch) + "," + format_double(e.loss) + "," + format_double(e.accuracy) + "," +
           format_double(e.val_loss) + "," + format_double(e.val_accuracy) + "," + format_float(float(e.lr)) +
           "," + std::to_string(e.steps) + "," + format_double(e.seconds) + "," +
           format_double(e.train_seconds) + "," + format_double(e.val_seconds) + "," +
           format_double(e.images_per_second()) + "," + format_double(e.loader_stall_seconds) + "," +
           std::to_string(e.val_predicted_classes) + "," + csv_text(e.val_only_class) + "," +
           (e.loss_exploded ? "1" : "0") + "\n";
  }
  return out;
}

namespace {
std::string json_number(double v) { return std::isfinite(v) ? format_double(v) : "null"; }
}  // namespace

std::string History::to_json() const {
  std::string out =
      "{\n  \"columns\": [\"epoch\", \"loss\", \"accuracy\", \"val_loss\", \"val_accuracy\", \"lr\", "
      "\"steps\", \"seconds\", \"train_seconds\", \"val_seconds\", \"images_per_second\", "
      "\"loader_stall_seconds\", \"val_predicted_classes\", \"val_only_class\", \"loss_exploded\"],\n"
      "  \"epochs\": [";
  for (size_t i = 0; i < epochs.size(); ++i) {
    const EpochRecord& e = epochs[i];
    out += i ? ",\n    " : "\n    ";
    out += "{\"epoch\": " + std::to_string(e.epoch) + ", \"loss\": " + json_number(e.loss) +
           ", \"accuracy\": " + json_number(e.accuracy) + ", \"val_loss\": " + json_number(e.val_loss) +
           ", \"val_accuracy\": " + json_number(e.val_accuracy) + ", \"lr\": " + (std::isfinite(e.lr) ? format_float(float(e.lr)) : std::string("null")) +
           ", \"steps\": " + std::to_string(e.steps) + ", \"seconds\": " + json_number(e.seconds) +
           ", \"train_seconds\": " + json_number(e.train_seconds) +
           ", \"val_seconds\": " + json_number(e.val_seconds) +
           ", \"images_per_second\": " + json_number(e.images_per_second()) +
           ", \"loader_stall_seconds\": " + json_number(e.loader_stall_seconds) +
           ", \"val_predicted_classes\": " + std::to_string(e.val_predicted_classes) +
           ", \"val_only_class\": " + (e.val_only_class.empty() ? std::string("null") : json_text(e.val_only_class)) +
           ", \"loss_exploded\": " + (e.loss_exploded ? "true" : "false") + "}";
  }
  out += epochs.empty() ? "]\n}\n" : "\n  ]\n}\n";
  return out;
}

}  // namespace fer::training
