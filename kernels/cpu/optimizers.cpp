#include "kernels/cpu/optimizers.h"

#include <cmath>

#include "kernels/cpu/parallel.h"

namespace fer::kernels::cpu {

float adam_step_size(const AdamParams& p) {
  const double t = double(p.step);
  const double b1t = std::pow(double(p.beta1), t);
  const double b2t = std::pow(double(p.beta2), t);
  return float(double(p.lr) * std::sqrt(1.0 - b2t) / (1.0 - b1t));
}

void adam_update(int64_t n, float* params, const float* grads, float* m, float* v,
                 const AdamParams& p) {
  const float lr_t = adam_step_size(p);
  const float b1 = p.beta1, b2 = p.beta2, eps = p.epsilon;
  const float one_minus_b1 = 1.0f - b1, one_minus_b2 = 1.0f - b2;
#pragma omp parallel for simd schedule(static) if (n >= detail::kMinParallelElements)
  for (int64_t i = 0; i < n; ++i) {
    const float g = grads[i];
    const float mi = b1 * m[i] + one_minus_b1 * g;
    const float vi = b2 * v[i] + one_minus_b2 * g * g;
    m[i] = mi;
    v[i] = vi;
    params[i] -= lr_t * mi / (std::sqrt(vi) + eps);
  }
}

void sgd_update(int64_t n, float* params, const float* grads, float* velocity, const SgdParams& p) {
  const float lr = p.lr, mom = p.momentum;
  if (mom == 0.0f || velocity == nullptr) {
#pragma omp parallel for simd schedule(static) if (n >= detail::kMinParallelElements)
    for (int64_t i = 0; i < n; ++i) params[i] -= lr * grads[i];
    return;
  }
  if (p.nesterov) {
#pragma omp parallel for simd schedule(static) if (n >= detail::kMinParallelElements)
    for (int64_t i = 0; i < n; ++i) {
      const float vi = mom * velocity[i] - lr * grads[i];
      velocity[i] = vi;
      params[i] += mom * vi - lr * grads[i];
    }
  } else {
#pragma omp parallel for simd schedule(static) if (n >= detail::kMinParallelElements)
    for (int64_t i = 0; i < n; ++i) {
      const float vi = mom * velocity[i] - lr * grads[i];
      velocity[i] = vi;
      params[i] += vi;
    }
  }
}

}  // namespace fer::kernels::cpu
