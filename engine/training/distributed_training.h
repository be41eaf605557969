#pragma once
// What the trainer does differently when `mpirun -np N fer_gpu train ...` (or srun) started it as
// one of N ranks: the hooks trainer.cpp calls, each a no-op for a single process (null
// communicator), so the loop reads the same either way.
//
// Semantics (README "Data parallel"):
//   * the config's batch_size is the GLOBAL batch B; every rank takes B/N images of every step
//     (refused, naming both numbers, when N does not divide B; drop_last = false is refused with
//     N > 1: a last partial batch would give unequal shares);
//   * every rank computes the same epoch permutation (seed, epoch) and takes its contiguous slice of
//     each global batch (loaders::BatchStreamOptions::shard), so the images of step k, and their
//     augmentation (keyed by (seed, epoch, image row)), do not depend on N;
//   * the loss is the mean over the global batch: each rank's gradient is the mean over its B/N
//     images, and the average of N equal-sized means is the global mean, so one all-reduce(mean)
//     of the flat gradient buffer per step (after backward, before the optimizer; on the compute
//     stream for NCCL) gives every rank the one-process gradient, up to float summation order;
//     on CPU ranks it overlaps the backward pass: the gradients of the last layers, whose
//     backward is done, are all-reduced (MPI_Iallreduce, in buckets of at least bucket_floats)
//     while the earlier layers' backward runs, and waited for before the optimizer (as PyTorch
//     DDP's buckets). Per element the same sum and 1/N as the blocking all-reduce (bit for bit
//     with 2 ranks, where a + b is the only order; tested);
//   * every rank starts from rank 0's weights (broadcast once) and applies the same update, so
//     the weights stay identical without further exchange;
//   * loss/accuracy sums are reduced where the trainer reads them (once per epoch on CUDA; every
//     step on the CPU, where the trainer reads every step anyway), the stop flag every step (a
//     Ctrl-C seen by any rank stops all at the same step);
//   * validation rows are split into N contiguous blocks, metrics summed, predictions gathered
//     in row order on every rank (so every callback decides the same on every rank);
//   * BatchNormalization: per-rank batch statistics (as PyTorch DDP); the moving statistics are
//     broadcast from rank 0 before each validation pass and checkpoint, so every rank validates
//     the model rank 0 saves (DDP's broadcast_buffers). --sync-batchnorm: statistics of the
//     global batch (PyTorch's SyncBatchNorm; CPU backend), the same as one process's;
//   * dropout: every rank keeps the run seed and draws its masks at its own rows' place in the
//     one-process stream (Graph::set_first_row(rank * B/N): row r of the global batch draws the
//     Philox elements one process gives row r), so each image of step k gets the mask one process
//     gives it, on CPU and GPU alike: runs with dropout follow one process to float rounding, as
//     those without do;
//   * only rank 0 prints, creates the run directory and writes checkpoints, history and report.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/distributed/communicator.h"
#include "engine/graph.h"
#include "engine/training/evaluate.h"
#include "loaders/batch_stream.h"

namespace fer::training {

class DistributedTraining {
 public:
  // comm: null or of size 1 for a single process. sync_batchnorm: BatchNormalization statistics
  // over the global batch (see the BatchNormalization layer, models/layers/batch_norm.cpp)
  // instead of per rank; meaningless for one process.
  explicit DistributedTraining(std::shared_ptr<distributed::Communicator> comm = nullptr, bool sync_batchnorm = false);

  // Overlap of the gradient all-reduce with backward (CPU ranks): a bucket is started once the
  // finished layers' gradients not yet started reach `floats` floats (default 2^20 = 4 MiB, so
  // model4's 18 MB gradient goes in about 5 pieces); 0: one blocking all-reduce after backward.
  // Before start().
  void set_bucket_floats(int64_t floats) { bucket_floats_ = floats; }
  // Buckets started by the last average_gradients (1 without overlap); for tests and logs.
  int buckets_last_step() const { return buckets_last_step_; }

  bool active() const { return comm_ != nullptr; }
  int rank() const { return comm_ ? comm_->rank() : 0; }
  int size() const { return comm_ ? comm_->size() : 1; }
  bool root() const { return rank() == 0; }
  distributed::Communicator* communicator() const { return comm_.get(); }
  // How to start the same ranks again, for the resume command: "" for one process, else
  // "mpirun -np N " (srun users put their own launcher there).
  std::string launch_prefix() const { return comm_ ? "mpirun -np " + std::to_string(size()) + " " : ""; }
  // "" for one process, else " on 2 ranks (MPI (Open MPI 4.1.4)), 64 images each".
  std::string describe(int global_batch) const;

  // The images each rank takes of a global batch: global_batch / size(). UserError (naming the
  // config and both numbers) when size() does not divide it, or drop_last is false with N > 1.
  int local_batch(int global_batch, bool drop_last, const std::string& config_path) const;
  // Makes the options deliver this rank's slice (BatchStreamOptions::shard).
  void shard(loaders::BatchStreamOptions& options) const;
  // This rank's contiguous block of `rows` (N blocks, sizes differing by at most one, rank order).
  // UserError (naming `what`, e.g. "validation images") when there are fewer rows than ranks.
  std::vector<int64_t> rows_of_rank(const std::vector<int64_t>& rows, const std::string& what = "rows") const;
  // CUDA device of this rank: its local rank, or 0 when the launcher made a single device visible
  // (CUDA_VISIBLE_DEVICES with one entry, as srun --gpus-per-task=1 does).
  int cuda_device() const;
  // UserError when synchronized BatchNormalization was asked for and the backend lacks it.
  void check_backend(const Backend& backend) const;
  // This rank's first row within every global batch: rank() * local_batch (the shard's slice,
  // loaders::BatchStreamOptions::shard); 0 for one process. For Graph::set_first_row.
  int64_t first_row(int local_batch) const { return int64_t(rank()) * local_batch; }

  // Runs `prepare` on every rank, then agrees: if any rank threw, the lowest such rank rethrows
  // its exception (the only message printed), `undo` runs on every rank that succeeded, and the
  // others throw distributed::PeerFailed with its exit status. A single process just runs it.
  void prepare_together(const std::function<void()>& prepare, const std::function<void()>& undo);
  // After prepare, before step 0: switches to NCCL when the graph's backend is CUDA, and gives
  // every rank rank 0's weights and BN statistics (every rank initialised them from the same seed
  // or read the same checkpoint, as it did the optimizer state: this makes sure of it).
  // With sync_batchnorm, installs the all-reduce of the BatchNormalization sums on the graph.
  void start(Graph& graph);

  // ---- every step ----
  // grads = mean over ranks (the global-batch gradient, engine comment above).
  void average_gradients(Graph& graph);
  // True when `flag` is true on any rank.
  bool any(bool flag);
  // Metric sums of all ranks.
  BatchMetrics sum(const BatchMetrics& m);

  // ---- validation ----
  // BN moving statistics of rank 0 on every rank.
  void share_state(Graph& graph);
  // Metrics summed; predictions of all ranks concatenated (in rank order, so in the order of the
  // full row list) on every rank: the callbacks (collapse watch) decide the same everywhere.
  EvalOutput gather(EvalOutput mine);

 private:
  // Backward hook (Graph::set_backward_hook): layer `layer` is done; starts a bucket when due.
  void layer_done(const Graph& graph, int layer);

  std::shared_ptr<distributed::Communicator> comm_;
  bool sync_batchnorm_ = false;
  int64_t bucket_floats_ = int64_t(1) << 20;
  bool overlap_ = false;
  std::vector<int64_t> layer_begin_;  // first gradient float (device layout) of each layer; -1: none
  int64_t unstarted_end_ = 0;         // [ready_begin_, unstarted_end_): final, not yet started
  int64_t ready_begin_ = 0;
  int buckets_ = 0, buckets_last_step_ = 0;
};

}  // namespace fer::training
