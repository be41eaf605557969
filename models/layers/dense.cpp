// Dense: y = x W + b on a flat input, optional activation applied in place on the output.
#include "engine/error.h"
#include "models/layers/layer_catalogue.h"
#include "models/onnx_form.h"

namespace fer::models {
namespace {

class Dense final : public Layer {
 public:
  Dense(int units, Act act) : units_(units), act_(act) {}
  const char* type() const override { return "Dense"; }

  Shape infer(const Shape& in) override {
    if (in.rank() != 1) {
      throw UserError("Dense '" + name() + "' needs a flat input, got " + in.str() +
                      " (add a Flatten or GlobalAveragePooling2D layer before it)");
    }
    in_ = in.dims[0];
    return Shape{{units_}};
  }

  std::vector<ParamSpec> param_specs() const override {
    return {{"kernel", {in_, units_}, Init::glorot_uniform, true, in_, units_},
            {"bias", {units_}, Init::zeros, true}};
  }

  void forward(const LayerIO& io) override {
    const DenseShape s{io.batch, in_, units_, io.math};
    io.backend->dense_forward(s, io.x, (*io.params)[0], (*io.params)[1], io.y);
    if (act_ != Act::linear) {
      io.backend->activation_forward(act_, int64_t(io.batch) * units_, units_, io.y, io.y);
    }
  }

  void backward(const LayerIO& io) override {
    const DenseShape s{io.batch, in_, units_, io.math};
    if (act_ != Act::linear) {
      io.backend->activation_backward(act_, int64_t(io.batch) * units_, units_, io.y, io.dy, io.dy);
    }
    io.backend->dense_backward(s, io.x, (*io.params)[0], io.dy, io.dx, (*io.grads)[0], (*io.grads)[1]);
  }

  // Gemm(x, W, b) with transB = 1: the kernel stored as [units, in], the layout PyTorch exports
  // and every importer handles (OpenCV 4.6 mis-sizes a transB = 0 Gemm), then the activation.
  std::string to_onnx(OnnxLayerForm& f) const override {
    const std::vector<float> kernel = f.param("kernel");  // [in, units]
    std::vector<float> transposed(kernel.size());
    for (int i = 0; i < in_; ++i)
      for (int u = 0; u < units_; ++u) transposed[size_t(u) * in_ + i] = kernel[size_t(i) * units_ + u];
    const std::string w = f.initializer("kernel", {units_, in_}, std::move(transposed));
    const std::string b = f.initializer("bias", {units_}, f.param("bias"));
    const std::string y = f.node("Gemm", {f.x, w, b},
                                 {OnnxAttribute::real("alpha", 1.0f), OnnxAttribute::real("beta", 1.0f),
                                  OnnxAttribute::integer("transA", 0), OnnxAttribute::integer("transB", 1)},
                                 "Gemm");
    return f.activation(act_, y);
  }

  bool ends_in_softmax() const override { return act_ == Act::softmax; }
  void emit_logits() override { act_ = Act::linear; }
  int64_t forward_flops(int batch) const override {
    return DenseShape{batch, in_, units_}.flops() + int64_t(batch) * units_;
  }

 private:
  int units_;
  Act act_;
  int in_ = 0;
};

}  // namespace

std::unique_ptr<Layer> make_dense(TableReader& r) {
  const int64_t units = r.require_int("units");
  if (units < 1) r.fail("units", "must be at least 1");
  return std::make_unique<Dense>(int(units), parse_activation(r, "activation", Act::linear));
}

}  // namespace fer::models
