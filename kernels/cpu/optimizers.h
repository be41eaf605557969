#pragma once
// Parameter updates over one flat buffer on the CPU (Keras/TensorFlow formulas).
#include <cstdint>

#include "kernels/common/shapes.h"

namespace fer::kernels::cpu {

// Adam with TensorFlow's "epsilon hat": lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t),
// m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2, params -= lr_t * m / (sqrt(v) + epsilon).
void adam_update(int64_t n, float* params, const float* grads, float* m, float* v,
                 const AdamParams& p);

// Keras SGD: v = momentum v - lr g; params += v (nesterov: params += momentum v - lr g).
// With momentum 0 the velocity is not needed and may be null.
void sgd_update(int64_t n, float* params, const float* grads, float* velocity, const SgdParams& p);

// lr_t of Adam step p.step, computed in double and rounded once (shared by CPU and tests).
float adam_step_size(const AdamParams& p);

}  // namespace fer::kernels::cpu
