#include "engine/training/history.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include <nlohmann/json.hpp>

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
using Json = nlohmann::ordered_json;

// JSON has no NaN or infinity: a non-finite number is written as null.
Json json_number(double v) { return std::isfinite(v) ? Json(v) : Json(nullptr); }

// The learning rate is a float: written as the shortest decimal that reads back to that float
// (0.001, not 0.0010000000474974513), as history.csv writes it.
Json json_float(double v) {
  const float f = float(v);
  return std::isfinite(f) ? Json(std::strtod(format_float(f).c_str(), nullptr)) : Json(nullptr);
}
}  // namespace

std::string History::to_json() const {
  Json columns = Json::array();
  for (const char* c : {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "steps", "seconds", "train_seconds",
                        "val_seconds", "images_per_second", "loader_stall_seconds", "val_predicted_classes",
                        "val_only_class", "loss_exploded"}) {
    columns.push_back(c);
  }
  Json rows = Json::array();
  for (const EpochRecord& e : epochs) {
    Json r;
    r["epoch"] = e.epoch;
    r["loss"] = json_number(e.loss);
    r["accuracy"] = json_number(e.accuracy);
    r["val_loss"] = json_number(e.val_loss);
    r["val_accuracy"] = json_number(e.val_accuracy);
    r["lr"] = json_float(e.lr);
    r["steps"] = e.steps;
    r["seconds"] = json_number(e.seconds);
    r["train_seconds"] = json_number(e.train_seconds);
    r["val_seconds"] = json_number(e.val_seconds);
    r["images_per_second"] = json_number(e.images_per_second());
    r["loader_stall_seconds"] = json_number(e.loader_stall_seconds);
    r["val_predicted_classes"] = e.val_predicted_classes;
    r["val_only_class"] = e.val_only_class.empty() ? Json(nullptr) : Json(e.val_only_class);
    r["loss_exploded"] = e.loss_exploded;
    rows.push_back(std::move(r));
  }
  Json doc;
  doc["columns"] = std::move(columns);
  doc["epochs"] = std::move(rows);
  // Class names come from folder names, which need not be valid UTF-8: replaced, not thrown on.
  return doc.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

}  // namespace fer::training
