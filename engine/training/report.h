#pragma once
// report.html: one self-contained page per run, viewable offline (no scripts, no external
// resources): the accuracy and loss curves (train vs validation, inline SVG, the two panels the
// original project plotted), the validation confusion matrix as a heat map with per-class
// precision/recall/F1, a summary table, timing, the per-epoch history, and a grid of
// misclassified validation faces (inline PNG data URIs), most confident mistakes first.
#include <cstdint>
#include <string>
#include <vector>

#include "engine/training/callbacks.h"
#include "engine/training/checkpoint.h"
#include "engine/training/history.h"
#include "loaders/dataset.h"

namespace fer::training {

struct ReportInput {
  std::string model_name;
  std::string config_path;
  std::string config_text;
  std::string run_dir;
  std::string status;  // "completed 50 epochs", "interrupted in epoch 3", ...
  std::string created;
  std::string device;
  std::string data_path;
  bool sample_data = false;
  int64_t train_rows = 0, val_rows = 0;
  int64_t trainable_params = 0, non_trainable_params = 0;
  int batch_size = 0;
  int target_epochs = 0;
  uint64_t seed = 0;
  std::string optimizer;   // "adam (lr 0.001)"
  std::string augmentation;
  std::string monitor;     // "val_accuracy (max)"
  BestCheckpointState best;
  std::string model_summary;  // Keras-style table
  double total_seconds = 0.0;
  const History* history = nullptr;
  std::vector<std::string> class_names;
  const Predictions* predictions = nullptr;  // last validation pass (may be empty)
  const loaders::Dataset* data = nullptr;     // for the faces (may be null)
  int max_faces = 40;
};

std::string render_report(const ReportInput& in);

// Helpers, exposed for tests.
std::string html_escape(const std::string& s);
std::string base64_encode(const std::string& bytes);
// PNG bytes of an 8-bit gray image.
std::string encode_png_gray(const uint8_t* pixels, int height, int width);

}  // namespace fer::training
