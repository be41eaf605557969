// Flatten: NHWC is already Keras' (h, w, c) order, so this is a pure reshape of the same buffer.
#include "models/layers/layer_catalogue.h"

namespace fer::models {
namespace {

class Flatten final : public Layer {
 public:
  const char* type() const override { return "Flatten"; }
  Shape infer(const Shape& in) override { return Shape{{int(in.size())}}; }
  bool aliases_input() const override { return true; }
  void forward(const LayerIO&) override {}
  void backward(const LayerIO&) override {}
};

}  // namespace

std::unique_ptr<Layer> make_flatten(TableReader&) { return std::make_unique<Flatten>(); }

}  // namespace fer::models
