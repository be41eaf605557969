#pragma once
// Batch normalisation over x[rows, channels] (channels fastest: NHWC after a convolution, [n, f]
// after a dense layer). Semantics as in engine/backend.h. gamma/beta may be null (scale 1,
// offset 0); moving_mean/moving_var may be null in training (no update). Host-includable launchers.
#include <cstdint>

#include <cuda_runtime_api.h>

namespace fer::kernels::cuda {

// Batch statistics (biased variance) -> save_mean, save_invstd = 1/sqrt(var + epsilon);
// moving_mean = momentum*moving_mean + (1-momentum)*mean;
// moving_var  = momentum*moving_var  + (1-momentum)*var*rows/(rows-1)  (unbiased, as TensorFlow);
// y = gamma*(x - mean)*invstd + beta. y may alias x.
// scratch (both reductions): device memory for partial sums, plan_channel_reduce(rows, channels, 2,
// scratch_bytes).scratch_bytes of it used (launch_util.cuh); cudaErrorInvalidValue when null or
// too small.
cudaError_t batchnorm_forward_train(int64_t rows, int channels, const float* x, const float* gamma,
                                    const float* beta, float* y, float* save_mean,
                                    float* save_invstd, float* moving_mean, float* moving_var,
                                    float momentum, float epsilon, double* scratch,
                                    size_t scratch_bytes, cudaStream_t stream);

// y = gamma*(x - moving_mean)/sqrt(moving_var + epsilon) + beta. y may alias x.
cudaError_t batchnorm_forward_infer(int64_t rows, int channels, const float* x, const float* gamma,
                                    const float* beta, const float* moving_mean,
                                    const float* moving_var, float* y, float epsilon,
                                    cudaStream_t stream);

// xhat = (x - mean)*invstd; dbeta = sum dy; dgamma = sum dy*xhat (both overwritten, required);
// dx = gamma*invstd*(dy - dbeta/rows - xhat*dgamma/rows). dx may alias dy.
cudaError_t batchnorm_backward(int64_t rows, int channels, const float* x, const float* gamma,
                               const float* dy, const float* save_mean, const float* save_invstd,
                               float* dx, float* dgamma, float* dbeta, double* scratch,
                               size_t scratch_bytes, cudaStream_t stream);

}  // namespace fer::kernels::cuda
