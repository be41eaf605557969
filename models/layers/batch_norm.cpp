// BatchNormalization over the last axis: per channel after a convolution, per feature after a
// dense layer. Training normalises with batch statistics and updates the moving averages;
// inference uses the moving averages.
//
// Moving averages: by default Keras' rule, moving = momentum * moving + (1 - momentum) * batch,
// from moving mean 0 and moving variance 1 (Keras 3 and tf.keras; after t steps the starting
// values still weigh momentum^t: 0.99^220 = 0.11 after one FER2013 epoch at batch 128).
// zero_debias = true gives the zero-debiased average of standalone Keras 2.x on TensorFlow 1.x
// (keras/backend/tensorflow_backend.py moving_average_update -> assign_moving_average(...,
// zero_debias=True)), Adam's bias correction applied to the statistics: after t training steps
// moving = sum_{k<=t} (1-m) m^(t-k) batch_k / (1 - m^t), the initial values ignored. With only
// the step count that is the same update with a per-step momentum
//     m_t = 1 - (1 - m) / (1 - m^t)        (m_1 = 0: the first batch's statistics),
// so no extra state is kept and resuming (which restores the step count) continues exactly.
#include <cmath>

#include "engine/error.h"
#include "models/layers/layer_catalogue.h"
#include "models/onnx_form.h"

namespace fer::models {
namespace {

class BatchNorm final : public Layer {
 public:
  BatchNorm(float momentum, float epsilon, bool zero_debias)
      : momentum_(momentum), epsilon_(epsilon), zero_debias_(zero_debias) {}
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
                                          p[2], p[3], momentum_at(io.step), epsilon_);
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

  // The momentum of the moving-average update in the training step after `steps_before` steps
  // (see the file comment). In double: 1 - m^t loses nothing for m = 0.99 up to t ~ 1e15.
  float momentum_at(uint64_t steps_before) const {
    if (!zero_debias_) return momentum_;
    const double m = double(momentum_);
    const double t = double(steps_before) + 1.0;
    return float(1.0 - (1.0 - m) / (1.0 - std::pow(m, t)));
  }

 private:
  float momentum_, epsilon_;
  bool zero_debias_;
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
  const bool zero_debias = r.get_bool("zero_debias").value_or(false);
  return std::make_unique<BatchNorm>(float(momentum), float(epsilon), zero_debias);
}

}  // namespace fer::models
