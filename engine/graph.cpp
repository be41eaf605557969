#include "engine/graph.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

#include "engine/error.h"
#include "engine/nvtx.h"
#include "engine/op_context.h"
#include "kernels/common/philox.h"

namespace fer {

std::string Shape::str() const {
  std::ostringstream out;
  out << "(None";
  for (int d : dims) out << ", " << d;
  out << ")";
  return out.str();
}

Graph::Graph(std::vector<std::unique_ptr<Layer>> layers, Shape input, int classes)
    : layers_(std::move(layers)), input_shape_(std::move(input)), classes_(classes) {
  if (layers_.empty()) throw UserError("the model has no layers");
  if (layers_.size() >= kernels::kDropoutLayerStride) {
    throw UserError("the model has " + std::to_string(layers_.size()) + " layers; at most " +
                    std::to_string(kernels::kDropoutLayerStride - 1) +
                    " are supported (each step's dropout streams are numbered by layer)");
  }
  shapes_.push_back(input_shape_);
  layer_params_.resize(layers_.size());
  for (size_t i = 0; i < layers_.size(); ++i) {
    fwd_names_.push_back("fwd/" + layers_[i]->name());
    bwd_names_.push_back("bwd/" + layers_[i]->name());
    shapes_.push_back(layers_[i]->infer(shapes_.back()));
    for (const ParamSpec& spec : layers_[i]->param_specs()) {
      int64_t& dense = spec.trainable ? trainable_count_ : state_count_;
      ParamLayout& layout = spec.trainable ? trainable_layout_ : state_layout_;
      ParamEntry entry{int(i), spec, dense, aligned_param_offset(layout.device_floats)};
      layout.runs.push_back({entry.offset, entry.device_offset, spec.size()});
      dense += spec.size();
      layout.dense_floats = dense;
      layout.device_floats = entry.device_offset + spec.size();
      layer_params_[i].push_back(entry);
    }
  }
  const Shape& out = shapes_.back();
  if (out.rank() != 1 || out.dims[0] != classes_) {
    throw UserError("the last layer '" + layers_.back()->name() + "' outputs " + out.str() +
                    " but the model has " + std::to_string(classes_) +
                    " classes: its units must equal the class count");
  }
  if (!layers_.back()->ends_in_softmax()) {
    throw UserError("the last layer '" + layers_.back()->name() +
                    "' must end in a softmax (activation = \"softmax\") for categorical "
                    "cross-entropy");
  }
  layers_.back()->emit_logits();
}

Graph::~Graph() = default;

std::vector<ParamEntry> Graph::all_params() const {
  std::vector<ParamEntry> all;
  for (const auto& entries : layer_params_) all.insert(all.end(), entries.begin(), entries.end());
  return all;
}

void Graph::plan(std::shared_ptr<Backend> shared, int max_batch, const std::vector<int>& other_batches,
                 std::optional<Precision> precision) {
  if (backend_) throw std::logic_error("Graph::plan called twice");
  if (max_batch < 1) throw UserError("batch size must be at least 1");
  const Precision p = precision.value_or(shared->default_precision());
  if (const std::string why = shared->precision_unsupported(p); !why.empty()) {
    throw UserError(std::string("precision ") + precision_name(p) + ": " + why);
  }
  precision_ = p;
  const kernels::MathType math = math_type(p);
  backend_ = std::move(shared);
  Backend& backend = *backend_;
  max_batch_ = max_batch;
  arena_ = std::make_unique<Arena>(backend);
  Arena& a = *arena_;
  const Shape& in = input_shape_;
  const int h = in.rank() == 3 ? in.dims[0] : 1, w = in.rank() == 3 ? in.dims[1] : 1;
  images_ = a.reserve_array<uint8_t>(int64_t(max_batch) * h * w);
  draws_ = a.reserve_array<AugmentDraw>(max_batch);
  labels_ = a.reserve_array<int32_t>(max_batch);
  input_ = a.reserve_array<float>(max_batch * in.size());
  // Zero-filled by the arena: the alignment gaps stay zero for good.
  params_ = a.reserve_array<float>(std::max<int64_t>(trainable_layout_.device_floats, 1));
  grads_ = a.reserve_array<float>(std::max<int64_t>(trainable_layout_.device_floats, 1));
  state_ = a.reserve_array<float>(std::max<int64_t>(state_layout_.device_floats, 1));
  metrics_ = a.reserve_array<double>(2);
  probs_ = a.reserve_array<float>(int64_t(max_batch) * classes_);

  int64_t largest = 0;
  for (const Shape& s : shapes_) largest = std::max(largest, s.size());
  grad_a_ = a.reserve_array<float>(largest * max_batch);
  grad_b_ = a.reserve_array<float>(largest * max_batch);

  std::vector<int> batches = other_batches;
  batches.push_back(max_batch);
  size_t workspace = 0;
  nodes_.assign(layers_.size(), Node{});
  Arena::Slot x = input_;
  for (size_t i = 0; i < layers_.size(); ++i) {
    Node& node = nodes_[i];
    node.y = layers_[i]->aliases_input() ? x
                                         : a.reserve_array<float>(shapes_[i + 1].size() * max_batch);
    node.saved = a.reserve_array<float>(layers_[i]->saved_floats(max_batch));
    for (int b : batches) {
      if (b > max_batch) throw std::logic_error("Graph::plan: other batch larger than max_batch");
      workspace = std::max(workspace, layers_[i]->workspace_bytes(backend, b, math));
    }
    x = node.y;
  }
  workspace_ = a.reserve(workspace);
  try {
    a.allocate();
  } catch (const DeviceError& e) {
    throw DeviceError(std::string(e.what()) + "\n" + batch_size_hint(backend, a.total_bytes()));
  }

  for (size_t i = 0; i < layers_.size(); ++i) {
    for (const ParamEntry& p : layer_params_[i]) {
      if (p.spec.trainable) {
        nodes_[i].param_ptrs.push_back(params() + p.device_offset);
        nodes_[i].grad_ptrs.push_back(grads() + p.device_offset);
      } else {
        nodes_[i].param_ptrs.push_back(state() + p.device_offset);
        nodes_[i].grad_ptrs.push_back(nullptr);
      }
    }
  }
  out_ = a.at<float>(nodes_.back().y);
}

std::string Graph::batch_size_hint(Backend& backend, size_t asked) const {
  // Activations, their gradients and the float input grow with the batch; the rest is fixed.
  int64_t per_sample = 0, largest = 0;
  for (const Shape& s : shapes_) largest = std::max(largest, s.size());
  per_sample += 2 * largest + input_shape_.size();
  for (size_t i = 0; i < layers_.size(); ++i)
    if (!layers_[i]->aliases_input()) per_sample += shapes_[i + 1].size();
  const size_t per_sample_bytes = size_t(per_sample) * sizeof(float);
  std::string hint = "the model's buffers for batch " + std::to_string(max_batch_) + " need " +
                     std::to_string(asked >> 20) + " MiB (" + std::to_string(per_sample_bytes >> 10) +
                     " KiB per sample)";
  size_t free_bytes = 0, total_bytes = 0;
  if (backend.memory_info(&free_bytes, &total_bytes)) {
    const size_t fixed = asked > per_sample_bytes * size_t(max_batch_) ? asked - per_sample_bytes * size_t(max_batch_) : 0;
    const size_t usable = free_bytes > fixed ? (free_bytes - fixed) * 9 / 10 : 0;
    const size_t fits = usable / per_sample_bytes;
    hint += fits >= 1 ? "; about " + std::to_string(fits) + " samples fit: try --batch-size " +
                            std::to_string(std::min<size_t>(fits, size_t(max_batch_) - 1))
                      : "; not even batch 1 fits in the free device memory";
  }
  return hint;
}

void Graph::initialize(uint64_t seed) {
  if (!backend_) throw std::logic_error("Graph::initialize before plan");
  seed_ = seed;
  std::vector<float> params(trainable_count_), state(state_count_);
  uint64_t stream = 0;
  for (const ParamEntry& p : all_params()) {
    float* dst = (p.spec.trainable ? params.data() : state.data()) + p.offset;
    const int64_t n = p.spec.size();
    switch (p.spec.init) {
      case Init::zeros: std::fill(dst, dst + n, 0.0f); break;
      case Init::ones: std::fill(dst, dst + n, 1.0f); break;
      case Init::glorot_uniform: {
        const double limit = std::sqrt(6.0 / double(p.spec.fan_in + p.spec.fan_out));
        for (int64_t j = 0; j < n; ++j) {
          const float u = kernels::philox_uniform_at(seed, kernels::init_stream_id(stream), uint64_t(j));
          dst[j] = float((2.0 * u - 1.0) * limit);
        }
        break;
      }
    }
    ++stream;
  }
  upload_params(params);
  upload_state(state);
}

uint8_t* Graph::images() const { return arena_->at<uint8_t>(images_); }
AugmentDraw* Graph::draws() const { return arena_->at<AugmentDraw>(draws_); }
int32_t* Graph::labels() const { return arena_->at<int32_t>(labels_); }
float* Graph::input() const { return arena_->at<float>(input_); }
float* Graph::params() const { return arena_->at<float>(params_); }
float* Graph::grads() const { return arena_->at<float>(grads_); }
float* Graph::state() const { return arena_->at<float>(state_); }
const float* Graph::logits() const { return out_; }

void Graph::set_batch_from_host(int n, const uint8_t* images, const int32_t* labels,
                                const AugmentDraw* draws) {
  if (n < 1 || n > max_batch_) throw std::logic_error("batch size outside the planned range");
  const int64_t pixels = input_shape_.size();
  backend_->copy_from_host(this->images(), images, size_t(n) * pixels);
  backend_->copy_from_host(this->labels(), labels, size_t(n) * sizeof(int32_t));
  if (draws) backend_->copy_from_host(this->draws(), draws, size_t(n) * sizeof(AugmentDraw));
  convert_images(n, draws != nullptr);
}

void Graph::convert_images(int n, bool augment) {
  const int h = input_shape_.dims[0], w = input_shape_.dims[1];
  backend_->images_to_float(n, h, w, images(), augment ? draws() : nullptr, input());
}

LayerIO Graph::io_for(int i, int n, bool training, uint64_t step) const {
  LayerIO io;
  io.backend = backend_.get();
  io.batch = n;
  io.training = training;
  io.x = i == 0 ? input() : arena_->at<float>(nodes_[i - 1].y);
  io.y = arena_->at<float>(nodes_[i].y);
  io.params = &nodes_[i].param_ptrs;
  io.grads = &nodes_[i].grad_ptrs;
  io.saved = arena_->at<float>(nodes_[i].saved);
  io.workspace = arena_->at<void>(workspace_);
  io.seed = seed_;
  io.stream_id = kernels::dropout_stream_id(step, uint64_t(i));
  io.first_row = first_row_;
  io.step = step;
  io.math = math_type(precision_);
  io.channel_sum = channel_sum_ ? &channel_sum_ : nullptr;
  return io;
}

void Graph::forward(int n, bool training, uint64_t step) {
  if (n < 1 || n > max_batch_) throw std::logic_error("batch size outside the planned range");
  for (int i = 0; i < num_layers(); ++i) {
    if (layers_[i]->aliases_input()) continue;
    NvtxRange range(fwd_names_[i]);
    OpContextScope context(fwd_names_[i]);
    if (observer_) observer_->before_layer(i, Pass::forward);
    layers_[i]->forward(io_for(i, n, training, step));
    if (observer_) observer_->after_layer(i, Pass::forward);
  }
}

void Graph::loss(int n, bool with_grad) {
  NvtxRange range("loss");
  OpContextScope context("loss/softmax_cross_entropy");
  backend_->softmax_cross_entropy(n, classes_, out_, labels(),
                                  with_grad ? arena_->at<float>(grad_a_) : nullptr, 1.0f / float(n),
                                  arena_->at<double>(metrics_));
  metric_samples_ += n;
}

void Graph::backward(int n, uint64_t step) {
  int first = 0;  // the earliest layer that computes something needs no input gradient
  while (first < num_layers() && layers_[first]->aliases_input()) ++first;
  float* dy = arena_->at<float>(grad_a_);
  float* spare = arena_->at<float>(grad_b_);
  for (int i = num_layers() - 1; i >= first; --i) {
    if (layers_[i]->aliases_input()) continue;  // dx is dy, same layout
    NvtxRange range(bwd_names_[i]);
    OpContextScope context(bwd_names_[i]);
    LayerIO io = io_for(i, n, true, step);
    io.dy = dy;
    io.dx = i == first ? nullptr : spare;
    if (observer_) observer_->before_layer(i, Pass::backward);
    layers_[i]->backward(io);
    if (observer_) observer_->after_layer(i, Pass::backward);
    if (backward_hook_) backward_hook_(i);
    std::swap(dy, spare);
  }
}

BatchMetrics Graph::take_metrics() {
  double host[2] = {0.0, 0.0};
  backend_->synchronize();
  backend_->copy_to_host(host, arena_->at<double>(metrics_), sizeof(host));
  backend_->fill(arena_->at<float>(metrics_), 4, 0.0f);
  BatchMetrics m{host[0], host[1], metric_samples_};
  metric_samples_ = 0;
  return m;
}

std::vector<float> Graph::probabilities(int n) {
  float* probs = arena_->at<float>(probs_);
  backend_->activation_forward(Act::softmax, int64_t(n) * classes_, classes_, out_, probs);
  std::vector<float> host(size_t(n) * classes_);
  backend_->synchronize();
  backend_->copy_to_host(host.data(), probs, host.size() * sizeof(float));
  return host;
}

namespace {
std::vector<float> download(Backend& be, const float* p, int64_t n) {
  std::vector<float> host(n);
  be.synchronize();
  if (n) be.copy_to_host(host.data(), p, size_t(n) * sizeof(float));
  return host;
}
void upload(Backend& be, float* p, const std::vector<float>& host, int64_t n, const char* what) {
  if (int64_t(host.size()) != n) {
    throw std::invalid_argument(std::string("upload of ") + what + ": expected " +
                                std::to_string(n) + " floats, got " + std::to_string(host.size()));
  }
  if (n) be.copy_from_host(p, host.data(), size_t(n) * sizeof(float));
}
}  // namespace

std::vector<float> Graph::download_params() const {
  return trainable_layout_.to_dense(download(*backend_, params(), trainable_layout_.device_floats));
}
std::vector<float> Graph::download_grads() const {
  return trainable_layout_.to_dense(download(*backend_, grads(), trainable_layout_.device_floats));
}
std::vector<float> Graph::download_state() const {
  return state_layout_.to_dense(download(*backend_, state(), state_layout_.device_floats));
}
void Graph::upload_params(const std::vector<float>& host) {
  // A wrong size throws (upload's own check) before anything is copied.
  if (int64_t(host.size()) != trainable_count_) upload(*backend_, params(), host, trainable_count_, "parameters");
  upload(*backend_, params(), trainable_layout_.to_device(host), trainable_layout_.device_floats, "parameters");
}
void Graph::upload_state(const std::vector<float>& host) {
  if (int64_t(host.size()) != state_count_) upload(*backend_, state(), host, state_count_, "state");
  upload(*backend_, state(), state_layout_.to_device(host), state_layout_.device_floats, "state");
}

}  // namespace fer
