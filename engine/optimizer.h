#pragma once
// Optimizers over the graph's one flat parameter buffer: one fused update per step.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/param_layout.h"

namespace fer {

struct OptimizerConfig {
  enum class Kind { adam, sgd };
  Kind kind = Kind::adam;
  float learning_rate = 1e-3f;
  float beta1 = 0.9f, beta2 = 0.999f, epsilon = 1e-7f;  // Adam (Keras defaults)
  float momentum = 0.0f;                                 // SGD
  bool nesterov = false;
};

class Optimizer {
 public:
  // layout: the parameter buffer's (Graph::param_layout()); the update runs over all
  // layout.device_floats floats (zero gaps stay zero), checkpoints see the dense order.
  Optimizer(std::shared_ptr<Backend> backend, const ParamLayout& layout, const OptimizerConfig& config);
  ~Optimizer();
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  void step(float* params, const float* grads);
  int64_t steps_taken() const { return steps_; }
  float learning_rate() const { return config_.learning_rate; }
  void set_learning_rate(float lr) { config_.learning_rate = lr; }
  const OptimizerConfig& config() const { return config_; }

  // For checkpoints: the slot buffers (Adam m then v; SGD velocity) in the dense order
  // (slots * layout.dense_floats floats) and the step count. upload_state throws
  // std::invalid_argument on a wrong size.
  std::vector<float> download_state() const;
  void upload_state(const std::vector<float>& host, int64_t steps);
  int64_t state_floats() const { return slots_ * layout_.dense_floats; }

 private:
  std::shared_ptr<Backend> backend_;
  ParamLayout layout_;
  int64_t n_;  // device floats per slot
  OptimizerConfig config_;
  int slots_;
  float* buffer_ = nullptr;
  int64_t steps_ = 0;
};

}  // namespace fer
