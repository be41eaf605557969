#include <cmath>

#include "kernels/cuda/launch_util.cuh"
#include "kernels/cuda/optimizers.cuh"

namespace fer::kernels::cuda {
namespace {

__global__ void adam_kernel(int64_t n, float* params, const float* grads, float* m, float* v,
                            float lr_t, float beta1, float beta2, float one_minus_b1,
                            float one_minus_b2, float epsilon) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float g = grads[i];
    const float mi = beta1 * m[i] + one_minus_b1 * g;
    const float vi = beta2 * v[i] + one_minus_b2 * g * g;
    m[i] = mi;
    v[i] = vi;
    params[i] -= lr_t * mi / (sqrtf(vi) + epsilon);
  }
}

__global__ void sgd_plain_kernel(int64_t n, float* params, const float* grads, float lr) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    params[i] -= lr * grads[i];
  }
}

__global__ void sgd_momentum_kernel(int64_t n, float* params, const float* grads, float* velocity,
                                    float lr, float momentum, bool nesterov) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float g = grads[i];
    const float vi = momentum * velocity[i] - lr * g;
    velocity[i] = vi;
    params[i] += nesterov ? momentum * vi - lr * g : vi;
  }
}

}  // namespace

double adam_lr_t(const AdamParams& p) {
  const double t = double(p.step);
  return double(p.lr) * std::sqrt(1.0 - std::pow(double(p.beta2), t)) /
         (1.0 - std::pow(double(p.beta1), t));
}

cudaError_t adam_update(int64_t n, float* params, const float* grads, float* m, float* v,
                        const AdamParams& p, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  adam_kernel<<<grid_for(n), kBlock, 0, stream>>>(n, params, grads, m, v, float(adam_lr_t(p)),
                                                   p.beta1, p.beta2, 1.0f - p.beta1,
                                                   1.0f - p.beta2, p.epsilon);
  return cudaGetLastError();
}

cudaError_t sgd_update(int64_t n, float* params, const float* grads, float* velocity,
                       const SgdParams& p, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  if (p.momentum == 0.0f || velocity == nullptr) {
    sgd_plain_kernel<<<grid_for(n), kBlock, 0, stream>>>(n, params, grads, p.lr);
  } else {
    sgd_momentum_kernel<<<grid_for(n), kBlock, 0, stream>>>(n, params, grads, velocity, p.lr,
                                                             p.momentum, p.nesterov);
  }
  return cudaGetLastError();
}

}  // namespace fer::kernels::cuda
