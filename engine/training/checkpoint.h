#pragma once
// fer_gpu checkpoints: one self-describing, versioned binary file holding everything needed to
// continue a run exactly or to rebuild the model for eval/predict.
//
// Layout (little-endian):
//   header, 48 bytes
//     0  char[8]  magic "FERGPUCK"
//     8  u32      format version (kCheckpointVersion)
//    12  u32      header size (48)
//    16  u64      payload size in bytes
//    24  u64      payload checksum (64-bit multiply-rotate hash of the payload, see checkpoint.cpp)
//    32  u64      architecture hash (models::architecture_hash of the graph)
//    40  u64      header checksum (same hash over bytes 0..39)
//   payload: sections, each  u32 tag (4 ASCII chars), u32 reserved (0), u64 length, bytes
//     MODL  model name, class names, the resolved config text and where it came from
//     TENS  tensor table: trainable/state float counts; per tensor name ("conv2d_1/kernel"),
//           trainable flag, shape, offset into its flat buffer
//     PARM  trainable parameters (float32, the graph's flat layout)
//     STAT  non-trainable state: BatchNormalization moving mean/variance (float32)
//     OPTM  optimizer kind, hyper-parameters, CURRENT learning rate, step count, slot buffers
//           (Adam m then v; SGD velocity)
//     POSN  seed, next epoch, batches of it already done, global step (the dropout counter),
//           target epochs, batch size, partial epoch metrics, data row counts, finished flag
//     CALL  best-checkpoint, ReduceLROnPlateau and EarlyStopping state (+ its best weights)
//     HIST  the history so far (every EpochRecord)
//     LDST  per-epoch loader stall seconds of the history (optional; absent: 0)
//     PRED  the last validation pass's predictions (for the report's confusion matrix)
//     INFO  device description, fer_gpu format note, creation time
//   A reader skips sections it does not know; every section above except LDST/PRED/INFO is required.
//
// Writes are atomic (temporary file, fsync, rename). Reading validates magic, version, header
// checksum, file size (truncation), payload checksum and the consistency of every section, and
// throws fer::UserError naming the file and what is wrong.
#include <cstdint>
#include <string>
#include <vector>

#include "engine/graph.h"
#include "engine/training/callbacks.h"
#include "engine/training/history.h"

namespace fer::training {

constexpr uint32_t kCheckpointVersion = 1;
constexpr size_t kCheckpointHeaderBytes = 48;

// The 64-bit hash of `n` bytes at `data` that the header's payload and header checksums hold
// (four multiply-rotate lanes over 32-byte blocks, a tail, a final avalanche; checkpoint.cpp).
// Public so tools that write checkpoints byte by byte (the fuzzer's re-sealing) use the same one.
uint64_t checkpoint_checksum(const void* data, size_t n);

struct TensorInfo {
  std::string name;  // "<layer>/<param>"
  bool trainable = true;
  std::vector<int> shape;
  int64_t offset = 0;  // floats into params (trainable) or state
  int64_t size() const {
    int64_t s = 1;
    for (int d : shape) s *= d;
    return s;
  }
};

struct TrainPosition {
  uint64_t seed = 0;
  int64_t epoch = 0;           // 0-based epoch to run next (or the one in progress)
  int64_t batch_in_epoch = 0;  // batches of `epoch` already done (0 at an epoch boundary)
  uint64_t global_step = 0;    // optimizer steps so far; the dropout stream counter
  int32_t target_epochs = 0;
  int32_t batch_size = 0;
  // Metrics of the batches of `epoch` done so far (interrupted mid-epoch), summed in step order.
  double partial_loss_sum = 0.0, partial_correct = 0.0;
  int64_t partial_samples = 0;
  double partial_train_seconds = 0.0;
  int64_t train_rows = 0, val_rows = 0;
  bool finished = false;  // EarlyStopping ended the run
};

struct CallbackStates {
  BestCheckpointState best;
  ReduceLrState reduce_lr;
  EarlyStoppingState early_stopping;
};

// The last validation pass: for each validation row (in order), the predicted class and the
// probability of that class.
struct Predictions {
  int epoch = 0;  // 1-based epoch of the pass; 0 = none
  std::vector<int64_t> rows;
  std::vector<int32_t> truth;
  std::vector<int32_t> predicted;
  std::vector<float> confidence;
};

struct Checkpoint {
  // identity
  std::string model_name;
  uint64_t arch_hash = 0;
  std::vector<std::string> class_names;
  std::string config_text;    // the resolved config, enough to rebuild the model
  std::string config_origin;  // the path it was read from
  // weights
  std::vector<TensorInfo> tensors;
  int64_t trainable_count = 0, state_count = 0;
  std::vector<float> params, state;
  // optimizer
  int32_t optimizer_kind = 0;  // OptimizerConfig::Kind
  float learning_rate = 0.0f;  // current (after ReduceLROnPlateau)
  float beta1 = 0, beta2 = 0, epsilon = 0, momentum = 0;
  int32_t nesterov = 0;
  int64_t optimizer_steps = 0;
  std::vector<float> optimizer_state;
  // run
  TrainPosition position;
  CallbackStates callbacks;
  History history;
  Predictions predictions;
  std::string device;
  std::string created;
};

// The tensor table of a graph (names "<layer>/<param>", shapes, offsets).
std::vector<TensorInfo> tensor_table(const Graph& graph);

// Serialises and writes atomically. Throws UserError on I/O failure.
void write_checkpoint(const std::string& path, const Checkpoint& ckpt);
std::string serialize_checkpoint(const Checkpoint& ckpt);

// Reads and validates. With weights_only the optimizer state and early-stopping best weights are
// skipped (eval/predict). Throws UserError naming `path`.
Checkpoint read_checkpoint(const std::string& path, bool weights_only = false);
Checkpoint parse_checkpoint(const std::string& bytes, const std::string& path, bool weights_only = false);

// Refuses a checkpoint of another architecture: "PATH is a checkpoint of model8, but CONFIG
// describes model5". Also checks the tensor table against the graph.
void check_checkpoint_matches(const Checkpoint& ckpt, const std::string& ckpt_path, const Graph& graph,
                              uint64_t graph_hash, const std::string& model_name,
                              const std::string& config_path);

}  // namespace fer::training
