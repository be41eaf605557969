#pragma once
// What the graph executor knows of a layer: shapes, parameter specs, buffer needs, and forward/
// backward on pointers through a Backend. Concrete layer types live in models/layers/.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/backend.h"

namespace fer {

struct OnnxLayerForm;  // models/onnx_form.h: what a layer adds to an exported ONNX graph

// Per-sample shape: {h, w, c} for feature maps, {features} after Flatten/Dense.
struct Shape {
  std::vector<int> dims;
  int64_t size() const {
    int64_t s = 1;
    for (int d : dims) s *= d;
    return s;
  }
  int rank() const { return int(dims.size()); }
  bool operator==(const Shape&) const = default;
  std::string str() const;  // Keras style: "(None, 46, 46, 32)"
};

enum class Init { glorot_uniform, zeros, ones };

struct ParamSpec {
  std::string name;  // "kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance"
  std::vector<int> shape;
  Init init = Init::zeros;
  bool trainable = true;
  int fan_in = 0, fan_out = 0;  // for glorot_uniform
  int64_t size() const {
    int64_t s = 1;
    for (int d : shape) s *= d;
    return s;
  }
};

// Pointers for one forward or backward call. params/grads are indexed like param_specs();
// grads[i] is null for non-trainable parameters.
struct LayerIO {
  Backend* backend = nullptr;
  int batch = 0;
  bool training = false;
  const float* x = nullptr;
  float* y = nullptr;
  float* dy = nullptr;  // gradient w.r.t. y; a layer may overwrite it (e.g. activation backward)
  float* dx = nullptr;  // gradient w.r.t. x; null for the first layer
  const std::vector<float*>* params = nullptr;
  const std::vector<float*>* grads = nullptr;
  float* saved = nullptr;     // saved_floats(batch) floats kept from forward to backward
  void* workspace = nullptr;  // shared scratch of workspace_bytes()
  uint64_t seed = 0;          // run seed, for dropout
  uint64_t stream_id = 0;     // unique per (step, layer), for dropout
  // Data parallelism: this rank's first row within the global batch (0 for one process), so that
  // dropout gives row r of the global batch the same mask on any rank (Graph::set_first_row).
  int64_t first_row = 0;
  uint64_t step = 0;          // training steps taken before this one (the optimizer's count)
  // Operand type of this plan's matrix ops (engine/precision.h); a layer passes it on in the
  // ConvShape/DenseShape it hands the backend and never branches on it.
  kernels::MathType math = kernels::MathType::f32;
  // Data parallelism with synchronized BatchNormalization (Graph::set_channel_sum): replaces
  // count doubles with their sums over every rank. Null: statistics of this process's batch.
  const std::function<void(double*, int)>* channel_sum = nullptr;
};

class Layer {
 public:
  virtual ~Layer() = default;

  virtual const char* type() const = 0;
  const std::string& name() const { return name_; }
  void set_name(std::string name) { name_ = std::move(name); }

  // Checks the input shape and returns the output shape; throws UserError naming the problem.
  virtual Shape infer(const Shape& input) = 0;
  virtual std::vector<ParamSpec> param_specs() const { return {}; }
  virtual int64_t saved_floats(int batch) const { return 0; }
  // math: the plan's operand type (as LayerIO::math will be).
  virtual size_t workspace_bytes(Backend& backend, int batch, kernels::MathType math) const { return 0; }
  // A pure reshape: y is x and dx is dy (Flatten).
  virtual bool aliases_input() const { return false; }

  virtual void forward(const LayerIO& io) = 0;
  virtual void backward(const LayerIO& io) = 0;

  // The last layer's softmax is fused into the loss: such a layer is told to output logits.
  virtual bool ends_in_softmax() const { return false; }
  virtual void emit_logits() {}

  // The layer's inference form in an exported ONNX graph (see models/onnx_form.h): appends its
  // nodes and initializers and returns the name of its output tensor. An empty name means the
  // layer has no ONNX form (the default): export refuses the model, naming the layer.
  virtual std::string to_onnx(OnnxLayerForm& form) const { return {}; }

  virtual int64_t forward_flops(int batch) const { return 0; }
  // Backward usually costs twice the forward (input and parameter gradients).
  virtual int64_t backward_flops(int batch) const { return 2 * forward_flops(batch); }

 private:
  std::string name_;
};

}  // namespace fer
