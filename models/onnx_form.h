#pragma once
// The ONNX form of a model as plain data. Each layer adapter in models/layers/ knows its own form
// (Layer::to_onnx appends nodes and initializers to an OnnxLayerForm, as a Caffe layer knows its
// prototxt); draft_onnx_graph() walks the graph once; models/onnx_export.cpp turns the draft into
// an onnx::ModelProto with libonnx and checks it. The draft needs no ONNX library, so every layer
// compiles, and its form can be tested, on builds without one.
//
// Tensor conventions inside the exported graph (ONNX operator set kOnnxOpset):
//   * the model input is NHWC [N, h, w, c] float32, as fer_gpu feeds its graph (pixel * 1/255);
//     the writer's first node transposes it to NCHW, the layout of ONNX's Conv and pooling ops;
//   * feature maps are NCHW, flat tensors are [N, features]; N is a dynamic dimension;
//   * Flatten transposes back to NHWC before flattening, so the features keep Keras' (h, w, c)
//     order and Dense kernels are written as trained, without permuting rows;
//   * the last layer emits logits (its softmax is fused into the training loss) and the writer
//     appends the Softmax, so the graph output is the probabilities fer_gpu predict prints.
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "engine/graph.h"
#include "engine/layer.h"

namespace fer {

// ONNX operator set the forms are written against: 13 is the first with Softmax over one axis
// (not a 2-D coercion); ONNX 1.8+, onnxruntime 1.6+ and OpenCV 4.x's importer read it.
constexpr int kOnnxOpset = 13;
// IR version 7 is the one that introduced opset 13 (ONNX 1.8).
constexpr int kOnnxIrVersion = 7;

struct OnnxAttribute {
  enum class Kind { integer, integers, real };
  std::string name;
  Kind kind = Kind::integer;
  int64_t i = 0;
  std::vector<int64_t> ints;
  float f = 0.0f;

  static OnnxAttribute integer(std::string name, int64_t v);
  static OnnxAttribute integers(std::string name, std::vector<int64_t> v);
  static OnnxAttribute real(std::string name, float v);
};

struct OnnxNode {
  std::string op_type;  // ONNX operator name in the default domain: "Conv", "Relu", ...
  std::string name;     // unique node name, "<layer>/<op>"
  std::vector<std::string> inputs;
  std::string output;
  std::vector<OnnxAttribute> attributes;
};

struct OnnxInitializer {
  std::string name;
  std::vector<int64_t> dims;
  std::vector<float> values;  // float32, row-major over dims
};

struct OnnxGraphDraft {
  std::string input;   // graph input: NHWC [N, h, w, c] float32
  std::string output;  // graph output: softmax probabilities [N, classes]
  std::vector<int> input_hwc;  // h, w, c
  int classes = 0;
  std::vector<OnnxNode> nodes;  // in execution order
  std::vector<OnnxInitializer> initializers;
  // The distinct operator types used, sorted (for the README and the export summary).
  std::set<std::string> op_types() const;
};

// What one layer sees while writing its form.
struct OnnxLayerForm {
  OnnxGraphDraft* graph = nullptr;
  const Layer* layer = nullptr;
  std::string x;             // the layer's input tensor
  Shape input_shape;         // per-sample Keras shape: (h, w, c) -> NCHW tensor, (features) -> [N, features]
  Shape output_shape;
  std::vector<ParamSpec> specs;       // the layer's param_specs()
  std::vector<const float*> params;   // host values of each spec (trainable or state), same order

  // Appends a node "<layer>/<suffix>" on `inputs` and returns its output tensor (same name).
  std::string node(const std::string& op_type, std::vector<std::string> inputs,
                   std::vector<OnnxAttribute> attributes, const std::string& suffix);
  // Adds a float32 initializer "<layer>/<suffix>" and returns its name. values.size() must equal
  // the product of dims (std::logic_error otherwise: a bug in the layer's form).
  std::string initializer(const std::string& suffix, std::vector<int64_t> dims, std::vector<float> values);
  // The parameter `name` ("kernel", "gamma", ...) as a float vector; std::logic_error if absent.
  std::vector<float> param(const std::string& name) const;
  // Relu, or Softmax over the channels (axis 1 in NCHW and [N, features]), after `x`; linear
  // returns x itself.
  std::string activation(Act act, const std::string& x, const std::string& suffix_prefix = "");
};

// Walks the graph in order and collects every layer's form, with the input transpose in front
// and the softmax at the end. params/state are the graph's flat host buffers (Graph::
// download_params()/download_state() or a checkpoint's). Throws UserError naming the first layer
// without an ONNX form ("layer 'x' (Type) has no ONNX form"), and UserError when the buffers do
// not match the graph's parameter counts.
OnnxGraphDraft draft_onnx_graph(const Graph& graph, const std::vector<float>& params,
                                const std::vector<float>& state);

}  // namespace fer
