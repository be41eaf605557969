#pragma once
// Inference over dataset rows: the validation pass of training, `fer_gpu eval` and
// `fer_gpu predict`. No augmentation, no dropout (inference-mode forward), BatchNormalization
// with its moving statistics.
#include <cstdint>
#include <vector>

#include "engine/graph.h"
#include "engine/training/checkpoint.h"
#include "engine/training/metrics.h"
#include "loaders/dataset.h"
#include "loaders/resident_data.h"

namespace fer::training {

struct EvalOutput {
  BatchMetrics metrics;              // loss and accuracy (with_loss only)
  Predictions predictions;           // per row: truth (-1 unlabeled), predicted class, its probability
  std::vector<float> probabilities;  // [rows, classes] when asked for
  ConfusionMatrix confusion(int classes) const;
};

// Runs `rows` of `data` through the planned graph in batches of at most graph.max_batch().
// with_loss needs labels. Discards metrics accumulated on the graph before the call.
// resident (optional): the same rows, in the same order, batched by graph.max_batch() without
// shuffling or augmentation, gathered from data held on the graph's backend instead of copied
// from the host; the results are the same.
EvalOutput evaluate_rows(Graph& graph, const loaders::Dataset& data, const std::vector<int64_t>& rows,
                         bool with_loss, bool keep_probabilities,
                         loaders::ResidentBatches* resident = nullptr);

}  // namespace fer::training

#include <memory>
#include <string>

#include "models/run_config.h"

namespace fer::training {

// A model rebuilt from a checkpoint for eval/predict.
struct LoadedModel {
  Checkpoint checkpoint;  // weights only (no optimizer state)
  models::RunConfig config;
  std::unique_ptr<Graph> graph;  // built, not yet planned
  std::vector<std::string> class_names;
};

// Reads the checkpoint and builds its model: from config_path when given (which must describe
// the same architecture: "checkpoint is for model8, config is model5"), otherwise from the config
// text the checkpoint carries.
LoadedModel load_model(const std::string& checkpoint_path, const std::string& config_path);

// Plans the graph for batches of up to `batch` images (and `tail`, the last partial batch) on
// the backend and uploads the checkpoint's weights and BN statistics.
// precision: the plan's (engine/precision.h); nullopt: the backend's default.
void place_model(LoadedModel& model, std::shared_ptr<Backend> backend, int batch, int tail,
                 std::optional<Precision> precision = std::nullopt);

}  // namespace fer::training
