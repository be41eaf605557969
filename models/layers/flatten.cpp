// Flatten: NHWC is already Keras' (h, w, c) order, so this is a pure reshape of the same buffer.
#include "models/layers/layer_catalogue.h"
#include "models/onnx_form.h"

namespace fer::models {
namespace {

class Flatten final : public Layer {
 public:
  const char* type() const override { return "Flatten"; }
  Shape infer(const Shape& in) override { return Shape{{int(in.size())}}; }
  bool aliases_input() const override { return true; }
  void forward(const LayerIO&) override {}
  void backward(const LayerIO&) override {}
  // NCHW back to NHWC, then Flatten: the features in Keras' (h, w, c) order the Dense kernels
  // after it were trained on. A flat input needs no node.
  std::string to_onnx(OnnxLayerForm& f) const override {
    if (f.input_shape.rank() != 3) return f.x;
    const std::string nhwc = f.node("Transpose", {f.x}, {OnnxAttribute::integers("perm", {0, 2, 3, 1})}, "Transpose");
    return f.node("Flatten", {nhwc}, {OnnxAttribute::integer("axis", 1)}, "Flatten");
  }
};

}  // namespace

std::unique_ptr<Layer> make_flatten(TableReader&) { return std::make_unique<Flatten>(); }

}  // namespace fer::models
