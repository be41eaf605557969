// Activation: relu, linear or softmax (over the last axis) as a layer of its own.
#include "models/layers/layer_catalogue.h"
#include "models/onnx_form.h"

namespace fer::models {
namespace {

class Activation final : public Layer {
 public:
  explicit Activation(Act act) : act_(act) {}
  const char* type() const override { return "Activation"; }
  Shape infer(const Shape& in) override {
    cols_ = in.dims.back();
    size_ = in.size();
    return in;
  }
  void forward(const LayerIO& io) override {
    const int64_t n = int64_t(io.batch) * size_;
    if (act_ == Act::linear) {
      io.backend->copy(io.y, io.x, size_t(n) * sizeof(float));
    } else {
      io.backend->activation_forward(act_, n, cols_, io.x, io.y);
    }
  }
  void backward(const LayerIO& io) override {
    if (!io.dx) return;
    const int64_t n = int64_t(io.batch) * size_;
    if (act_ == Act::linear) {
      io.backend->copy(io.dx, io.dy, size_t(n) * sizeof(float));
    } else {
      io.backend->activation_backward(act_, n, cols_, io.y, io.dy, io.dx);
    }
  }
  // Relu or Softmax over the channels; linear passes its input on with no node.
  std::string to_onnx(OnnxLayerForm& f) const override { return f.activation(act_, f.x); }

  bool ends_in_softmax() const override { return act_ == Act::softmax; }
  void emit_logits() override { act_ = Act::linear; }
  int64_t forward_flops(int batch) const override { return int64_t(batch) * size_; }

 private:
  Act act_;
  int cols_ = 0;
  int64_t size_ = 0;
};

}  // namespace

std::unique_ptr<Layer> make_activation(TableReader& r) {
  if (!r.has("activation")) r.fail("activation", "is required");
  return std::make_unique<Activation>(parse_activation(r, "activation", Act::linear));
}

}  // namespace fer::models
