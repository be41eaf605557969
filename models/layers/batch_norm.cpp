// BatchNormalization over the last axis: per channel after a convolution, per feature after a
// dense layer. Training normalises with batch statistics and updates the moving averages;
// inference uses the moving averages.
#include "engine/error.h"
#include "models/layers/layer_catalogue.h"
#include "models/onnx_form.h"

namespace fer::models {
namespace {

class BatchNorm final : public Layer {
 public:
  BatchNorm(float momentum, float epsilon) : momentum_(momentum), epsilon_(epsilon) {}
  const char* type() const override { return "BatchNormalization"; }

  Shape infer(const Shape& in) override {
    if (in.rank() != 1 && in.rank() != 3) {
      throw UserError("BatchNormalization '" + name() + "' needs an (h, w, c) or (features) input, got " + in.str());
    }
    channels_ = in.dims.back();
    rows_per_sample_ = in.size() / channels_;
    return in;
  }

  std::vector<ParamSpec> param_specs() const override {
    return {{"gamma", {channels_}, Init::ones, true},
            {"beta", {channels_}, Init::zeros, true},
            {"moving_mean", {channels_}, Init::zeros, false},
            {"moving_variance", {channels_}, Init::ones, false}};
  }
  int64_t saved_floats(int) const override { return 2 * int64_t(channels_); }

  void forward(const LayerIO& io) override {
    const BatchNormShape s{int64_t(io.batch) * rows_per_sample_, channels_};
    const auto& p = *io.params;
    if (io.training) {
      io.backend->batchnorm_forward_train(s, io.x, p[0], p[1], io.y, io.saved, io.saved + channels_,
                                          p[2], p[3], momentum_, epsilon_);
    } else {
      io.backend->batchnorm_forward_infer(s, io.x, p[0], p[1], p[2], p[3], io.y, epsilon_);
    }
  }

  void backward(const LayerIO& io) override {
    const BatchNormShape s{int64_t(io.batch) * rows_per_sample_, channels_};
    io.backend->batchnorm_backward(s, io.x, (*io.params)[0], io.dy, io.saved, io.saved + channels_,
                                   io.dx, (*io.grads)[0], (*io.grads)[1]);
  }

  // Inference BatchNormalization over axis 1 (channels of NCHW, features of [N, features]) with
  // the moving statistics: y = gamma * (x - mean) / sqrt(var + epsilon) + beta.
  std::string to_onnx(OnnxLayerForm& f) const override {
    const std::string gamma = f.initializer("gamma", {channels_}, f.param("gamma"));
    const std::string beta = f.initializer("beta", {channels_}, f.param("beta"));
    const std::string mean = f.initializer("moving_mean", {channels_}, f.param("moving_mean"));
    const std::string var = f.initializer("moving_variance", {channels_}, f.param("moving_variance"));
    return f.node("BatchNormalization", {f.x, gamma, beta, mean, var}, {OnnxAttribute::real("epsilon", epsilon_)},
                  "BatchNormalization");
  }

  int64_t forward_flops(int batch) const override {
    return 8 * int64_t(batch) * rows_per_sample_ * channels_;
  }

 private:
  float momentum_, epsilon_;
  int channels_ = 0;
  int64_t rows_per_sample_ = 0;
};

}  // namespace

std::unique_ptr<Layer> make_batch_norm(TableReader& r) {
  const double momentum = r.get_number("momentum").value_or(0.99);
  if (momentum < 0.0 || momentum >= 1.0) r.fail("momentum", "must be in [0, 1)");
  const double epsilon = r.get_number("epsilon").value_or(1e-3);
  if (epsilon <= 0.0) r.fail("epsilon", "must be positive");
  if (auto axis = r.get_int("axis"); axis && *axis != -1) {
    r.fail("axis", "only the last axis (-1) is supported (NHWC)");
  }
  return std::make_unique<BatchNorm>(float(momentum), float(epsilon));
}

}  // namespace fer::models
