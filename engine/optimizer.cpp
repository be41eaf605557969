#include "engine/optimizer.h"

#include <stdexcept>

#include "engine/nvtx.h"
#include "engine/op_context.h"

namespace fer {

Optimizer::Optimizer(std::shared_ptr<Backend> backend, const ParamLayout& layout, const OptimizerConfig& config)
    : backend_(std::move(backend)), layout_(layout), n_(layout.device_floats), config_(config),
      slots_(config.kind == OptimizerConfig::Kind::adam ? 2 : 1) {
  if (n_ > 0) {
    buffer_ = static_cast<float*>(backend_->allocate(size_t(slots_ * n_) * sizeof(float)));
    backend_->fill(buffer_, slots_ * n_, 0.0f);
  }
}

Optimizer::~Optimizer() {
  if (buffer_) backend_->deallocate(buffer_);
}

void Optimizer::step(float* params, const float* grads) {
  ++steps_;
  if (config_.kind == OptimizerConfig::Kind::adam) {
    NvtxRange range("optim/adam");
    OpContextScope context("optim/adam");
    AdamParams p{config_.learning_rate, config_.beta1, config_.beta2, config_.epsilon, steps_};
    backend_->adam_update(n_, params, grads, buffer_, buffer_ + n_, p);
  } else {
    NvtxRange range("optim/sgd");
    OpContextScope context("optim/sgd");
    SgdParams p{config_.learning_rate, config_.momentum, config_.nesterov};
    backend_->sgd_update(n_, params, grads, buffer_, p);
  }
}

std::vector<float> Optimizer::download_state() const {
  std::vector<float> host(size_t(slots_ * n_));
  backend_->synchronize();
  if (!host.empty()) backend_->copy_to_host(host.data(), buffer_, host.size() * sizeof(float));
  return layout_.to_dense(host, slots_);
}

void Optimizer::upload_state(const std::vector<float>& host, int64_t steps) {
  if (int64_t(host.size()) != state_floats()) {
    throw std::invalid_argument("optimizer state has " + std::to_string(host.size()) +
                                " floats, expected " + std::to_string(state_floats()));
  }
  const std::vector<float> device = layout_.to_device(host, slots_);
  if (!device.empty()) backend_->copy_from_host(buffer_, device.data(), device.size() * sizeof(float));
  steps_ = steps;
}

}  // namespace fer
