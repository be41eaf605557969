#pragma once
// The graph executor: an ordered chain of layers with shape inference, one flat buffer each for
// trainable parameters, their gradients and non-trainable state (BN moving statistics), and an
// arena of activations/gradients planned once per (model, max batch). It knows nodes, buffers
// and the backend, not layer types.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/arena.h"
#include "engine/backend.h"
#include "engine/layer.h"
#include "engine/param_layout.h"
#include "kernels/common/augment.h"

namespace fer {

struct ParamEntry {
  int layer = 0;
  ParamSpec spec;
  // Floats into the dense order of download_params/grads/state and checkpoints (trainable and
  // non-trainable tensors each packed without gaps).
  int64_t offset = 0;
  // Floats into the backend buffers params()/grads() (trainable) or state(): a multiple of
  // kParamAlignFloats, so every tensor starts 256-byte aligned (engine/param_layout.h).
  int64_t device_offset = 0;
};

struct BatchMetrics {
  double loss_sum = 0.0;  // summed per-sample cross-entropy
  double correct = 0.0;   // samples whose argmax equals the label
  int64_t samples = 0;
  double mean_loss() const { return samples ? loss_sum / double(samples) : 0.0; }
  double accuracy() const { return samples ? correct / double(samples) : 0.0; }
};

// An optional hook around every layer call the graph makes (benchmarks, profilers): before/after
// each layer's forward and backward, in execution order. Layers that only alias their input
// (Flatten) do no work and are not reported. Called on the host thread that drives the graph; on
// an asynchronous backend the hook sees enqueue points, not completion (time with backend timers).
enum class Pass { forward, backward };
class LayerObserver {
 public:
  virtual ~LayerObserver() = default;
  virtual void before_layer(int index, Pass pass) {}
  virtual void after_layer(int index, Pass pass) {}
};

class Graph {
 public:
  Graph(std::vector<std::unique_ptr<Layer>> layers, Shape input, int classes);
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  // ---- structure (available before plan) ----
  int num_layers() const { return int(layers_.size()); }
  const Layer& layer(int i) const { return *layers_[i]; }
  Layer& layer(int i) { return *layers_[i]; }
  const Shape& input_shape() const { return input_shape_; }
  const Shape& output_shape(int i) const { return shapes_[i + 1]; }
  int classes() const { return classes_; }
  const std::vector<ParamEntry>& params_of_layer(int i) const { return layer_params_[i]; }
  std::vector<ParamEntry> all_params() const;
  int64_t trainable_count() const { return trainable_count_; }
  int64_t non_trainable_count() const { return state_count_; }
  // params()/grads() as the backend holds them (aligned tensors, zero gaps): what an Optimizer
  // steps over and how its slots map to the dense checkpoint order.
  const ParamLayout& param_layout() const { return trainable_layout_; }
  const ParamLayout& state_layout() const { return state_layout_; }

  // ---- planning: allocates every buffer once; batches up to max_batch run without allocating.
  // other_batches lists further batch sizes the run will meet (their workspaces are planned too).
  // precision: the numeric mode of every matrix op of the plan (engine/precision.h); nullopt:
  // the backend's default. Throws UserError when the backend cannot run it (naming why).
  // The graph shares ownership of the backend: its buffers must not outlive their allocator.
  void plan(std::shared_ptr<Backend> backend, int max_batch, const std::vector<int>& other_batches = {},
            std::optional<Precision> precision = std::nullopt);
  Precision precision() const { return precision_; }
  bool planned() const { return backend_ != nullptr; }
  std::shared_ptr<Backend> shared_backend() const { return backend_; }
  Backend& backend() const { return *backend_; }
  int max_batch() const { return max_batch_; }
  size_t arena_bytes() const { return arena_ ? arena_->total_bytes() : 0; }

  // Keras initialisation (glorot_uniform kernels, zero biases, BN gamma 1, moving variance 1),
  // from Philox keyed by seed, tensor k of all_params() on stream init_stream_id(k)
  // (kernels/common/philox.h; apart from dropout's): the same seed gives the same weights everywhere.
  void initialize(uint64_t seed);

  // ---- input buffers (backend memory) ----
  uint8_t* images() const;         // [max_batch, h, w] uint8
  AugmentDraw* draws() const;      // [max_batch]
  int32_t* labels() const;         // [max_batch]
  float* input() const;            // [max_batch, h, w, c] float
  // Copies a host batch in and converts it to the float input (draws may be null: no augmentation).
  void set_batch_from_host(int n, const uint8_t* images, const int32_t* labels,
                           const AugmentDraw* draws);
  // Converts images() (+ draws() when augment) already in backend memory into input().
  void convert_images(int n, bool augment);

  // ---- execution (asynchronous on the backend; metrics accumulate on the device) ----
  void forward(int n, bool training, uint64_t step);
  // Fused softmax + cross-entropy on the logits; with_grad also writes the mean-loss gradient.
  void loss(int n, bool with_grad);
  void backward(int n, uint64_t step);
  // Reads and resets the metrics accumulated since the last call (synchronises).
  BatchMetrics take_metrics();
  const float* logits() const;  // [n, classes], pre-softmax
  // Softmax probabilities of the last forward pass, copied to the host ([n, classes]).
  std::vector<float> probabilities(int n);

  // ---- parameters ----
  // Backend buffers in the aligned layout (param_layout().device_floats floats; ParamEntry::
  // device_offset). The download/upload functions below use the dense layout (ParamEntry::offset).
  float* params() const;  // trainable
  float* grads() const;   // same layout as params
  float* state() const;   // non-trainable (state_layout())
  std::vector<float> download_params() const;
  std::vector<float> download_grads() const;
  std::vector<float> download_state() const;
  void upload_params(const std::vector<float>& host);
  void upload_state(const std::vector<float>& host);

  // Installs (or, with null, removes) the per-layer hook; the graph does not own it.
  void set_layer_observer(LayerObserver* observer) { observer_ = observer; }
  // Called by backward() after layer i's backward, layers in reverse order: layer i's gradients
  // (and every later layer's) are final from then on. Data parallelism starts their all-reduce
  // there (DistributedTraining::start). Empty: none.
  void set_backward_hook(std::function<void(int)> hook) { backward_hook_ = std::move(hook); }
  LayerObserver* layer_observer() const { return observer_; }

  // Synchronized BatchNormalization (data parallelism): training-mode BatchNormalization layers
  // normalise with statistics over every rank's batch, `sum` replacing a host array of doubles by
  // its sums over the ranks (an all-reduce). Empty function: per-process statistics (default).
  void set_channel_sum(std::function<void(double*, int)> sum) { channel_sum_ = std::move(sum); }

  void set_seed(uint64_t seed) { seed_ = seed; }
  uint64_t seed() const { return seed_; }
  // Data parallelism: the rows this graph processes start at row `row` of the global batch (rank
  // r of N with local batch b: r * b). Dropout draws its masks at that place in the one-process
  // stream, so every row gets the mask one process gives it (LayerIO::first_row). Default 0.
  void set_first_row(int64_t row) { first_row_ = row; }
  int64_t first_row() const { return first_row_; }

 private:
  struct Node {
    Arena::Slot y, saved;
    std::vector<float*> param_ptrs, grad_ptrs;
  };
  LayerIO io_for(int i, int n, bool training, uint64_t step) const;
  std::string batch_size_hint(Backend& backend, size_t asked) const;

  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<Shape> shapes_;  // shapes_[0] = input, shapes_[i+1] = output of layer i
  std::vector<std::vector<ParamEntry>> layer_params_;
  std::vector<std::string> fwd_names_, bwd_names_;  // "fwd/<layer>", "bwd/<layer>": NVTX and error context
  Shape input_shape_;
  int classes_ = 0;
  int64_t trainable_count_ = 0, state_count_ = 0;
  ParamLayout trainable_layout_, state_layout_;

  std::shared_ptr<Backend> backend_;
  std::unique_ptr<Arena> arena_;  // declared after backend_: destroyed first
  int max_batch_ = 0;
  std::vector<Node> nodes_;
  Arena::Slot images_, draws_, labels_, input_, params_, grads_, state_, metrics_, probs_;
  Arena::Slot grad_a_, grad_b_, workspace_;
  const float* out_ = nullptr;  // the last layer's output (logits)
  uint64_t seed_ = 0;
  int64_t first_row_ = 0;
  Precision precision_ = Precision::fp32;
  int64_t metric_samples_ = 0;
  LayerObserver* observer_ = nullptr;
  std::function<void(int)> backward_hook_;
  std::function<void(double*, int)> channel_sum_;
};

}  // namespace fer
