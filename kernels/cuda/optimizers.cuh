#pragma once
// Optimizer updates over one flat parameter buffer, one launch each. Host-includable launchers.
#include <cstdint>

#include <cuda_runtime_api.h>

#include "kernels/common/shapes.h"

namespace fer::kernels::cuda {

// tf.keras Adam (TensorFlow's ApplyAdam):
//   lr_t = lr * sqrt(1 - beta2^step) / (1 - beta1^step)   (computed once on the host, in double)
//   m = beta1*m + (1-beta1)*g;  v = beta2*v + (1-beta2)*g*g;  p -= lr_t * m / (sqrt(v) + epsilon)
cudaError_t adam_update(int64_t n, float* params, const float* grads, float* m, float* v,
                        const AdamParams& p, cudaStream_t stream);

// The learning rate Adam applies at p.step (exposed for tests and the CPU backend to agree on).
double adam_lr_t(const AdamParams& p);

// Keras SGD: momentum == 0 or no velocity: p -= lr*g; otherwise
//   v = momentum*v - lr*g;  p += nesterov ? momentum*v - lr*g : v.
cudaError_t sgd_update(int64_t n, float* params, const float* grads, float* velocity,
                       const SgdParams& p, cudaStream_t stream);

}  // namespace fer::kernels::cuda
