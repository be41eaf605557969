#include "engine/training/distributed_training.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <exception>

#include "engine/error.h"

namespace fer::training {

DistributedTraining::DistributedTraining(std::shared_ptr<distributed::Communicator> comm, bool sync_batchnorm)
    : comm_(comm && comm->size() > 1 ? std::move(comm) : nullptr), sync_batchnorm_(sync_batchnorm && comm_) {}

void DistributedTraining::check_backend(const Backend& backend) const {
  if (sync_batchnorm_ && !backend.has_sync_batchnorm()) {
    throw UserError(std::string("--sync-batchnorm: synchronized BatchNormalization is not implemented on the ") +
                    device_name(backend.kind()) + " backend yet; leave it out (per-rank statistics)");
  }
}

std::string DistributedTraining::describe(int global_batch) const {
  if (!comm_) return "";
  return " on " + std::to_string(size()) + " ranks (" + comm_->name() + "), " + std::to_string(global_batch / size()) +
         " images each";
}

int DistributedTraining::local_batch(int global_batch, bool drop_last, const std::string& config_path) const {
  const int n = size();
  if (n == 1) return global_batch;
  if (global_batch % n != 0) {
    throw UserError("batch_size " + std::to_string(global_batch) + " (" + config_path + " [train] batch_size or --batch-size) is the global batch and does not divide by the " +
                    std::to_string(n) + " ranks; choose a multiple of " + std::to_string(n));
  }
  if (!drop_last) {
    throw UserError(config_path + " [train] drop_last = false: with " + std::to_string(n) +
                    " ranks a last partial batch would be shared unequally; set drop_last = true");
  }
  return global_batch / n;
}

void DistributedTraining::shard(loaders::BatchStreamOptions& options) const {
  options.shard = rank();
  options.shards = size();
}

std::vector<int64_t> DistributedTraining::rows_of_rank(const std::vector<int64_t>& rows, const std::string& what) const {
  const int64_t n = int64_t(rows.size()), parts = size(), r = rank();
  if (n < parts) {
    throw UserError(std::to_string(n) + " " + what + " cannot be shared by " + std::to_string(parts) +
                    " ranks; use fewer ranks or more data");
  }
  const int64_t begin = n * r / parts, end = n * (r + 1) / parts;
  return std::vector<int64_t>(rows.begin() + begin, rows.begin() + end);
}

int DistributedTraining::cuda_device() const {
  if (!comm_) return 0;
  const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
  if (visible && *visible && !std::strchr(visible, ',')) return 0;
  return comm_->local_rank();
}

void DistributedTraining::prepare_together(const std::function<void()>& prepare, const std::function<void()>& undo) {
  std::exception_ptr error;
  int status = 0;
  try {
    prepare();
  } catch (const UserError&) {
    error = std::current_exception();
    status = 2;
  } catch (...) {
    error = std::current_exception();
    status = 1;
  }
  if (!comm_) {
    if (error) std::rethrow_exception(error);
    return;
  }
  // The lowest failing rank r as size - r under a max (0: none failed).
  int64_t lowest = error ? size() - rank() : 0;
  comm_->all_reduce_max_host(&lowest, 1);
  if (lowest == 0) return;
  const int failed = size() - int(lowest);
  int32_t shared_status = status;
  comm_->broadcast_host(&shared_status, sizeof shared_status, failed);
  if (rank() == failed) std::rethrow_exception(error);
  if (!error) undo();
  throw distributed::PeerFailed(failed, shared_status);
}

void DistributedTraining::start(Graph& graph) {
  if (!comm_) return;
  if (graph.backend().kind() == DeviceKind::cuda) comm_ = distributed::make_nccl(comm_, graph.backend().native_stream());
  if (sync_batchnorm_) {
    distributed::Communicator* comm = comm_.get();
    graph.set_channel_sum([comm](double* v, int n) { comm->all_reduce_sum_host(v, n); });
  }
  comm_->broadcast(graph.params(), size_t(graph.param_layout().device_floats) * sizeof(float), 0);
  share_state(graph);
  // Overlap on CPU ranks only: a CUDA step's NCCL all-reduce stays one call on the compute stream
  // after backward (a piece on the same stream would wait for the backward kernels anyway).
  // Buckets need each layer's gradients to lie after the previous layer's in the flat buffer, so
  // that the finished layers always own one contiguous tail of it (ParamLayout lays them out in
  // layer order; checked, not assumed).
  layer_begin_.assign(size_t(graph.num_layers()), -1);
  bool ordered = true;
  int64_t last = -1;
  for (int i = 0; i < graph.num_layers(); ++i) {
    for (const ParamEntry& e : graph.params_of_layer(i)) {
      if (!e.spec.trainable) continue;
      ordered = ordered && e.device_offset > last;
      last = e.device_offset;
      if (layer_begin_[size_t(i)] < 0) layer_begin_[size_t(i)] = e.device_offset;
    }
  }
  overlap_ = bucket_floats_ > 0 && ordered && graph.backend().kind() == DeviceKind::cpu;
  unstarted_end_ = ready_begin_ = graph.param_layout().device_floats;
  if (overlap_) graph.set_backward_hook([this, &graph](int layer) { layer_done(graph, layer); });
}

void DistributedTraining::layer_done(const Graph& graph, int layer) {
  const int64_t begin = layer_begin_[size_t(layer)];
  if (begin >= 0) ready_begin_ = std::min(ready_begin_, begin);
  if (unstarted_end_ - ready_begin_ >= bucket_floats_) {
    comm_->start_all_reduce_mean(graph.grads() + ready_begin_, unstarted_end_ - ready_begin_);
    unstarted_end_ = ready_begin_;
    ++buckets_;
  }
  comm_->progress();
}

void DistributedTraining::average_gradients(Graph& graph) {
  if (!comm_) return;
  if (!overlap_) {
    comm_->all_reduce_mean(graph.grads(), graph.param_layout().device_floats);
    buckets_last_step_ = 1;
    return;
  }
  // The rest, from the start of the buffer (the first layers, alignment gaps included: the
  // blocking call reduces the whole buffer too), then wait for every piece.
  if (unstarted_end_ > 0) {
    comm_->start_all_reduce_mean(graph.grads(), unstarted_end_);
    ++buckets_;
  }
  comm_->finish_all_reduces();
  buckets_last_step_ = buckets_;
  buckets_ = 0;
  unstarted_end_ = ready_begin_ = graph.param_layout().device_floats;
}

bool DistributedTraining::any(bool flag) {
  if (!comm_) return flag;
  int64_t v = flag ? 1 : 0;
  comm_->all_reduce_max_host(&v, 1);
  return v != 0;
}

BatchMetrics DistributedTraining::sum(const BatchMetrics& m) {
  if (!comm_) return m;
  double v[3] = {m.loss_sum, m.correct, double(m.samples)};
  comm_->all_reduce_sum_host(v, 3);
  return BatchMetrics{v[0], v[1], int64_t(v[2])};
}

void DistributedTraining::share_state(Graph& graph) {
  if (comm_ && graph.state_layout().device_floats > 0) {
    comm_->broadcast(graph.state(), size_t(graph.state_layout().device_floats) * sizeof(float), 0);
  }
}

namespace {
template <typename T>
std::vector<T> gather_vector(distributed::Communicator& comm, const std::vector<T>& mine,
                             const std::vector<int64_t>& counts) {
  std::vector<size_t> bytes(counts.size());
  size_t total = 0;
  for (size_t r = 0; r < counts.size(); ++r) total += bytes[r] = size_t(counts[r]) * sizeof(T);
  std::vector<T> all(total / sizeof(T));
  comm.gather_host(mine.data(), bytes, all.data(), 0);
  comm.broadcast_host(all.data(), total, 0);
  return all;
}
}  // namespace

EvalOutput DistributedTraining::gather(EvalOutput mine) {
  if (!comm_) return mine;
  mine.metrics = sum(mine.metrics);
  std::vector<int64_t> counts(size_t(size()), 0);
  counts[size_t(rank())] = int64_t(mine.predictions.predicted.size());
  comm_->all_reduce_max_host(counts.data(), int(counts.size()));
  Predictions& p = mine.predictions;
  p.rows = gather_vector(*comm_, p.rows, counts);
  p.truth = gather_vector(*comm_, p.truth, counts);
  p.predicted = gather_vector(*comm_, p.predicted, counts);
  p.confidence = gather_vector(*comm_, p.confidence, counts);
  mine.probabilities.clear();
  return mine;
}

}  // namespace fer::training
