#pragma once
// The training loop behind `fer_gpu train`.
//
//   fer::training::TrainRequest req;
//   req.config_path = "configs/model5.toml";
//   req.epochs = 2;                               // command-line overrides (optional)
//   fer::training::Trainer trainer(req);          // every check happens here, before step 0
//   TrainResult r = trainer.run(&stop_flag);      // stop_flag: set by a SIGINT handler
//
// The constructor validates everything that can fail before the first step: the config (strict
// keys), the data (labels, class count, enough rows for a batch), the device, the checkpoint to
// resume from (format, checksum, architecture), and that the run directory can be written. It
// then creates the run directory and writes the resolved config there; nothing is written before
// all checks pass, so a user error leaves no half-made run directory.
//
// Each epoch: shuffled, augmented batches (seeded by (seed, epoch)) either gathered on the
// backend from the data set held in its memory (loaders::ResidentData: CUDA when the images take
// at most a quarter of the free device memory, or [data] resident / --resident "on") or streamed
// by loaders::BatchStream's loader thread; both give the same batches, so the same run.
// Forward / fused softmax-cross-entropy / backward / optimizer step, dropout keyed by
// (seed, global step); then a validation pass (no augmentation, no dropout, BN moving
// statistics); then callbacks (best checkpoint, ReduceLROnPlateau, EarlyStopping) and the files:
// best.ckpt when the monitored quantity improved, last.ckpt, history.csv/json, report.html.
//
// Metrics are read from the device every `metrics_every` steps (every step on the CPU, where it
// costs nothing; once per epoch on CUDA, so no step waits for the host — a NaN is then reported
// for the epoch's steps as a range) and summed on the host in step order, so a run resumed
// mid-epoch reproduces the straight run's numbers bit for bit on the CPU. A non-finite loss stops
// the run (status diverged) without writing a checkpoint of the diverged weights. A finite loss
// that exploded, or validation predictions all of one class, are marked on the epoch line and in
// the history and warned about once (collapse.h); [callbacks.terminate_on_collapse] stops the run
// on them (status early_stopped).
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

namespace fer::distributed {
class Communicator;
}

namespace fer::training {

struct TrainRequest {
  std::string config_path;
  std::optional<std::string> data_path;  // --data
  std::optional<std::string> device;     // --device cuda|cpu (default: cuda when present)
  std::optional<int> epochs;             // --epochs: the total number of epochs of the run
  std::optional<int> batch_size;         // --batch-size
  std::optional<int64_t> seed;           // --seed
  std::optional<std::string> out_dir;    // --out (default runs/<config-stem>-<timestamp>)
  std::optional<std::string> resume;     // --resume: a run directory or a .ckpt file
  std::optional<std::string> resident;   // --resident auto|on|off (default: the config's [data] resident)
  // --precision fp32|tf32|bf16 (engine/precision.h); default: a resumed run's own, else the
  // config's [train] precision, else the device's default (tf32 on CUDA, fp32 on the CPU).
  std::optional<std::string> precision;

  std::FILE* out = stdout;               // progress and messages; null: silent
  std::optional<bool> tty;               // default: whether stdout is a terminal (out == stdout)
  // For tests: behave as if Ctrl-C arrived after this many steps of this process (-1: never).
  int64_t interrupt_after_steps = -1;
  // Steps between metric reads (0: 1 on the CPU, once per epoch on CUDA).
  int metrics_every = 0;
  // Data parallelism: this process's communicator when mpirun/srun started several
  // (distributed::connect; null: one process). Semantics: engine/training/distributed_training.h.
  std::shared_ptr<distributed::Communicator> communicator;
  // --sync-batchnorm: BatchNormalization statistics over the global batch (distributed_training.h).
  bool sync_batchnorm = false;
};

enum class TrainStatus { completed, early_stopped, interrupted, diverged };

struct TrainResult {
  TrainStatus status = TrainStatus::completed;
  std::string run_dir;
  int epochs_done = 0;      // epochs in the history
  std::string message;      // interrupted/diverged: what to tell the user (already printed)
};

class Trainer {
 public:
  explicit Trainer(const TrainRequest& request);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Trains until the target epoch count, EarlyStopping or TerminateOnCollapse, *stop (checked
  // after every step), or a non-finite loss. Interrupted runs write last.ckpt at the exact step reached.
  TrainResult run(const std::atomic<bool>* stop = nullptr);

  const std::string& run_dir() const;
  // The command that continues this run ("fer_gpu train CONFIG ... --resume DIR").
  std::string resume_command() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Quotes a word for a POSIX shell when it needs it.
std::string shell_quote(const std::string& word);

}  // namespace fer::training
