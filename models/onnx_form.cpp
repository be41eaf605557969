#include "models/onnx_form.h"

#include <stdexcept>

#include "engine/error.h"

namespace fer {

OnnxAttribute OnnxAttribute::integer(std::string name, int64_t v) {
  OnnxAttribute a;
  a.name = std::move(name);
  a.kind = Kind::integer;
  a.i = v;
  return a;
}

OnnxAttribute OnnxAttribute::integers(std::string name, std::vector<int64_t> v) {
  OnnxAttribute a;
  a.name = std::move(name);
  a.kind = Kind::integers;
  a.ints = std::move(v);
  return a;
}

OnnxAttribute OnnxAttribute::real(std::string name, float v) {
  OnnxAttribute a;
  a.name = std::move(name);
  a.kind = Kind::real;
  a.f = v;
  return a;
}

std::set<std::string> OnnxGraphDraft::op_types() const {
  std::set<std::string> ops;
  for (const OnnxNode& n : nodes) ops.insert(n.op_type);
  return ops;
}

std::string OnnxLayerForm::node(const std::string& op_type, std::vector<std::string> inputs,
                                std::vector<OnnxAttribute> attributes, const std::string& suffix) {
  OnnxNode n;
  n.op_type = op_type;
  n.name = layer->name() + "/" + suffix;
  n.inputs = std::move(inputs);
  n.output = n.name;
  n.attributes = std::move(attributes);
  graph->nodes.push_back(std::move(n));
  return graph->nodes.back().output;
}

std::string OnnxLayerForm::initializer(const std::string& suffix, std::vector<int64_t> dims,
                                       std::vector<float> values) {
  int64_t count = 1;
  for (int64_t d : dims) count *= d;
  if (count != int64_t(values.size())) {
    throw std::logic_error("ONNX initializer " + layer->name() + "/" + suffix + ": " +
                           std::to_string(values.size()) + " values for " + std::to_string(count) + " elements");
  }
  OnnxInitializer init;
  init.name = layer->name() + "/" + suffix;
  init.dims = std::move(dims);
  init.values = std::move(values);
  graph->initializers.push_back(std::move(init));
  return graph->initializers.back().name;
}

std::vector<float> OnnxLayerForm::param(const std::string& name) const {
  for (size_t i = 0; i < specs.size(); ++i) {
    if (specs[i].name == name) return std::vector<float>(params[i], params[i] + specs[i].size());
  }
  throw std::logic_error("layer " + layer->name() + " has no parameter " + name);
}

std::string OnnxLayerForm::activation(Act act, const std::string& in, const std::string& suffix_prefix) {
  switch (act) {
    case Act::relu: return node("Relu", {in}, {}, suffix_prefix + "Relu");
    // Keras' softmax runs over the last axis: the channels, axis 1 of NCHW and of [N, features].
    case Act::softmax: return node("Softmax", {in}, {OnnxAttribute::integer("axis", 1)}, suffix_prefix + "Softmax");
    default: return in;
  }
}

OnnxGraphDraft draft_onnx_graph(const Graph& graph, const std::vector<float>& params,
                                const std::vector<float>& state) {
  if (int64_t(params.size()) != graph.trainable_count() || int64_t(state.size()) != graph.non_trainable_count()) {
    throw UserError("the weights (" + std::to_string(params.size()) + " trainable, " + std::to_string(state.size()) +
                    " non-trainable values) do not match the model (" + std::to_string(graph.trainable_count()) +
                    ", " + std::to_string(graph.non_trainable_count()) + ")");
  }
  OnnxGraphDraft d;
  d.input = "input";
  d.output = "probabilities";
  d.classes = graph.classes();
  const Shape& in = graph.input_shape();
  std::string x = d.input;
  if (in.rank() == 3) {
    d.input_hwc = in.dims;
    OnnxNode t;
    t.op_type = "Transpose";
    t.name = "input/nhwc_to_nchw";
    t.inputs = {d.input};
    t.output = t.name;
    t.attributes = {OnnxAttribute::integers("perm", {0, 3, 1, 2})};
    d.nodes.push_back(t);
    x = t.output;
  } else if (in.rank() != 1) {
    throw UserError("ONNX export needs an (h, w, c) or (features) model input, got " + in.str());
  }
  for (int i = 0; i < graph.num_layers(); ++i) {
    const Layer& layer = graph.layer(i);
    OnnxLayerForm form;
    form.graph = &d;
    form.layer = &layer;
    form.x = x;
    form.input_shape = i == 0 ? in : graph.output_shape(i - 1);
    form.output_shape = graph.output_shape(i);
    for (const ParamEntry& p : graph.params_of_layer(i)) {
      form.specs.push_back(p.spec);
      form.params.push_back((p.spec.trainable ? params.data() : state.data()) + p.offset);
    }
    const std::string y = layer.to_onnx(form);
    if (y.empty()) {
      throw UserError("layer '" + layer.name() + "' (" + layer.type() +
                      ") has no ONNX form; nothing was written. fer_gpu exports Conv2D, Dense, "
                      "BatchNormalization, Activation, MaxPooling2D, AveragePooling2D, "
                      "GlobalAveragePooling2D, Dropout and Flatten");
    }
    x = y;
  }
  OnnxNode softmax;
  softmax.op_type = "Softmax";
  softmax.name = "probabilities";
  softmax.inputs = {x};
  softmax.output = d.output;
  softmax.attributes = {OnnxAttribute::integer("axis", 1)};
  d.nodes.push_back(softmax);
  return d;
}

}  // namespace fer
