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
//
// Synchronized (data-parallel ranks, LayerIO::channel_sum set; PyTorch's SyncBatchNorm): the
// batch statistics are those of the global batch. Forward: each rank's per-channel sums of
// (x - shift) and (x - shift)^2 and its row count are summed over the ranks (one all-reduce of
// 2C + 1 doubles), giving the global mean and biased variance; y is normalised with them and the
// moving statistics updated with them (identically on every rank). shift is the moving mean, the
// same on every rank. Backward: the sums of dy and dy (x - mean) are summed the same way and
//   dx = gamma invstd (dy - sum dy / M - (x - mean) invstd^2 sum dy (x - mean) / M),
// M the global row count: each rank's dy is that of its own mean loss, so dx is the gradient of the
// sum of the ranks' losses, and the trainer's all-reduce(mean) of the parameter gradients makes
// it the gradient of their mean, the global-batch loss. dgamma and dbeta are this rank's own sums
// (averaged with the other gradients).
#include <algorithm>
#include <cmath>
#include <vector>

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
  // mean, invstd; the synchronized path also keeps var and the backward coefficients k, mean_dy,
  // mean_dyxhat_invstd there (all per channel).
  int64_t saved_floats(int) const override { return 6 * int64_t(channels_); }

  void forward(const LayerIO& io) override {
    const BatchNormShape s{int64_t(io.batch) * rows_per_sample_, channels_};
    const auto& p = *io.params;
    if (io.training && io.channel_sum) {
      forward_synchronized(io, s);
    } else if (io.training) {
      io.backend->batchnorm_forward_train(s, io.x, p[0], p[1], io.y, io.saved, io.saved + channels_,
                                          p[2], p[3], momentum_at(io.step), epsilon_);
    } else {
      io.backend->batchnorm_forward_infer(s, io.x, p[0], p[1], p[2], p[3], io.y, epsilon_);
    }
  }

  void backward(const LayerIO& io) override {
    const BatchNormShape s{int64_t(io.batch) * rows_per_sample_, channels_};
    if (io.channel_sum) {
      backward_synchronized(io, s);
      return;
    }
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
  std::vector<float> download(Backend& be, const float* p) const {
    std::vector<float> h(static_cast<size_t>(channels_));
    be.synchronize();
    be.copy_to_host(h.data(), p, h.size() * sizeof(float));
    return h;
  }

  void forward_synchronized(const LayerIO& io, const BatchNormShape& s) {
    Backend& be = *io.backend;
    const auto& p = *io.params;
    const int C = channels_;
    std::vector<double> sums(size_t(2 * C + 1));
    be.batchnorm_sums(s, io.x, p[2], sums.data());
    sums[size_t(2 * C)] = double(s.rows);
    (*io.channel_sum)(sums.data(), 2 * C + 1);
    const double rows = sums[size_t(2 * C)];
    std::vector<float> shift = download(be, p[2]), moving_var = download(be, p[3]);
    std::vector<float> mean(static_cast<size_t>(C)), invstd(static_cast<size_t>(C)), var(static_cast<size_t>(C));
    std::vector<float> moving_mean = shift;
    const double m = double(momentum_at(io.step));
    for (int c = 0; c < C; ++c) {
      const double s1 = sums[size_t(c)], s2 = sums[size_t(C + c)];
      const double mu = double(shift[size_t(c)]) + s1 / rows;
      const double sq = std::max(0.0, s2 - s1 * s1 / rows);  // squared deviations from mu
      const double v = sq / rows;
      mean[size_t(c)] = float(mu);
      var[size_t(c)] = float(v);
      invstd[size_t(c)] = float(1.0 / std::sqrt(v + double(epsilon_)));
      moving_mean[size_t(c)] = float(m * double(moving_mean[size_t(c)]) + (1.0 - m) * mu);
      moving_var[size_t(c)] = float(m * double(moving_var[size_t(c)]) + (1.0 - m) * (rows > 1 ? sq / (rows - 1) : v));
    }
    const size_t bytes = size_t(C) * sizeof(float);
    be.copy_from_host(io.saved, mean.data(), bytes);
    be.copy_from_host(io.saved + C, invstd.data(), bytes);
    be.copy_from_host(io.saved + 2 * C, var.data(), bytes);
    be.batchnorm_forward_infer(s, io.x, p[0], p[1], io.saved, io.saved + 2 * C, io.y, epsilon_);
    be.copy_from_host(p[2], moving_mean.data(), bytes);
    be.copy_from_host(p[3], moving_var.data(), bytes);
  }

  void backward_synchronized(const LayerIO& io, const BatchNormShape& s) {
    Backend& be = *io.backend;
    const int C = channels_;
    const float* mean = io.saved;
    std::vector<double> sums(size_t(2 * C + 1));
    be.batchnorm_backward_sums(s, io.x, io.dy, mean, sums.data());
    const std::vector<float> invstd = download(be, io.saved + C), gamma = download(be, (*io.params)[0]);
    // This rank's dgamma and dbeta, before the sums become global.
    std::vector<float> dgamma(static_cast<size_t>(C)), dbeta(static_cast<size_t>(C));
    for (int c = 0; c < C; ++c) {
      dbeta[size_t(c)] = float(sums[size_t(c)]);
      dgamma[size_t(c)] = float(sums[size_t(C + c)] * double(invstd[size_t(c)]));
    }
    const size_t bytes = size_t(C) * sizeof(float);
    be.copy_from_host((*io.grads)[0], dgamma.data(), bytes);
    be.copy_from_host((*io.grads)[1], dbeta.data(), bytes);
    sums[size_t(2 * C)] = double(s.rows);
    (*io.channel_sum)(sums.data(), 2 * C + 1);  // on every rank, also when no dx is wanted
    if (!io.dx) return;
    const double rows = sums[size_t(2 * C)];
    std::vector<float> k(static_cast<size_t>(C)), mean_dy(static_cast<size_t>(C)), mean_dyx(static_cast<size_t>(C));
    for (int c = 0; c < C; ++c) {
      const double is = double(invstd[size_t(c)]);
      k[size_t(c)] = float(double(gamma[size_t(c)]) * is);
      mean_dy[size_t(c)] = float(sums[size_t(c)] / rows);
      mean_dyx[size_t(c)] = float(sums[size_t(C + c)] * is * is / rows);
    }
    be.copy_from_host(io.saved + 3 * C, k.data(), bytes);
    be.copy_from_host(io.saved + 4 * C, mean_dy.data(), bytes);
    be.copy_from_host(io.saved + 5 * C, mean_dyx.data(), bytes);
    be.batchnorm_backward_apply(s, io.x, io.dy, mean, io.saved + 3 * C, io.saved + 4 * C, io.saved + 5 * C, io.dx);
  }

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
