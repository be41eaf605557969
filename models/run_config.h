#pragma once
// A run's whole configuration from one TOML file: the model (name, input, classes, layer table),
// the training recipe, the data, augmentation, checkpointing and callbacks. Parsing is strict:
// unknown keys, wrong types and impossible values are UserErrors naming file, line and key.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/graph.h"
#include "engine/optimizer.h"

namespace fer::models {

struct LayerSpec {
  std::string type;  // "Conv2D"
  std::string name;  // "conv2d_1" (Keras' automatic naming unless the config names it)
  int line = 0;      // line of its [[layers]] header
};

struct ModelSpec {
  std::string name;
  std::vector<int> input_shape{48, 48, 1};
  int classes = 0;
  std::vector<LayerSpec> layers;
};

struct TrainSpec {
  OptimizerConfig optimizer;
  int batch_size = 128;
  int epochs = 50;
  uint64_t seed = 1;
  bool drop_last = true;  // steps_per_epoch = n // batch, like the original project
  // "fp32", "tf32" or "bf16" (engine/precision.h); absent: the device's default.
  std::optional<Precision> precision;
};

struct DataSpec {
  std::string path = "data/fer2013.csv";
  std::vector<int> drop_classes;  // FER2013 ids (0 angry ... 6 neutral) left out, e.g. {1}
  std::vector<std::string> train_usage{"Training"};
  std::vector<std::string> validation_usage{"PublicTest", "PrivateTest"};
  // Hold the uint8 images in the device's memory and gather batches there ("on"), stream them
  // through the pinned batch ring ("off"), or decide by device and free memory ("auto"; see
  // loaders/resident_data.h). Changes speed, never results.
  std::string resident = "auto";
};

struct AugmentSpec {
  float shear_range = 0.0f;  // degrees, as Keras' ImageDataGenerator takes it
  float zoom_range = 0.0f;
  bool horizontal_flip = false;
  bool enabled() const { return shear_range > 0.0f || zoom_range > 0.0f || horizontal_flip; }
};

// Monitored quantities: "loss", "accuracy", "val_loss", "val_accuracy". Every callback's mode is
// "auto" when the config leaves it out (Keras: max for accuracies, min for losses); an explicit
// "min"/"max" must agree with the quantity or the config is refused (see parse_run_config).
struct CheckpointSpec {
  std::string monitor = "val_accuracy";
  std::string mode = "auto";  // "min", "max" or "auto"
};

struct ReduceLrSpec {
  bool enabled = false;
  std::string monitor = "val_loss";
  std::string mode = "auto";
  float factor = 0.1f;
  int patience = 10;
  float min_delta = 1e-4f;
  int cooldown = 0;
  float min_lr = 0.0f;
};

struct EarlyStoppingSpec {
  bool enabled = false;
  std::string monitor = "val_loss";
  std::string mode = "auto";
  int patience = 0;
  float min_delta = 0.0f;
  bool restore_best_weights = false;
};

// [callbacks.terminate_on_collapse]: stop a run whose training has collapsed while its loss stays
// finite (a sibling of Keras' TerminateOnNaN; engine/training/collapse.h defines the signs). The
// signs are always detected and warned about; without this table training continues.
struct TerminateOnCollapseSpec {
  bool enabled = false;
  bool loss_explosion = true;     // stop at the first epoch whose loss exploded
  int single_class_patience = 0;  // stop after this many consecutive epochs predicting one class; 0: never
};

struct ParsedToml;

struct RunConfig {
  std::string path;         // as given
  std::string source_text;  // the file's text, for the run directory and checkpoints
  ModelSpec model;
  TrainSpec train;
  DataSpec data;
  AugmentSpec augment;
  CheckpointSpec checkpoint;
  ReduceLrSpec reduce_lr;
  EarlyStoppingSpec early_stopping;
  TerminateOnCollapseSpec terminate_on_collapse;
  std::shared_ptr<const ParsedToml> parsed;
};

// What a config is read for. model_only (eval/predict rebuilding a model from a checkpoint's
// embedded config) tolerates a callback mode that contradicts its monitor, which versions before
// that check wrote into checkpoints; the callbacks never run there. Everything else is as strict.
enum class ConfigUse { training, model_only };

// Reads and validates a config file; also builds the graph once so impossible shapes are
// reported now, with the line of the layer at fault. Throws UserError "FILE:LINE: ...: key 'K': ...".
RunConfig load_run_config(const std::string& path, ConfigUse use = ConfigUse::training);
// Same, from text already in memory (checkpoints carry their config); `origin` names it in errors.
RunConfig parse_run_config(const std::string& text, const std::string& origin, ConfigUse use = ConfigUse::training);

// Builds the model's graph (shape inference done, not yet planned on a backend).
std::unique_ptr<Graph> build_graph(const RunConfig& config);

// A hash of the architecture (layer types, names, shapes, parameter shapes) that checkpoints
// carry so a checkpoint is never loaded into a different model.
uint64_t architecture_hash(const Graph& graph);

// "min" or "max" for a monitored quantity: `mode` itself unless it is "auto", else Keras' auto
// rule (max for "accuracy"/"val_accuracy", min for the losses). Does not check for contradictions;
// parse_run_config refuses those.
std::string resolve_mode(const std::string& monitor, const std::string& mode);

}  // namespace fer::models
