#pragma once
// Batch normalisation on the CPU over x[rows, channels] (rows = n*h*w after a convolution).
// Keras/TensorFlow semantics: batch mean and biased variance normalise in training; the moving
// variance is updated with the unbiased batch variance (rows / (rows - 1)).
#include "kernels/common/shapes.h"

namespace fer::kernels::cpu {

void batchnorm_forward_train(const BatchNormShape& s, const float* x, const float* gamma,
                             const float* beta, float* y, float* save_mean, float* save_invstd,
                             float* moving_mean, float* moving_var, float momentum, float epsilon);
void batchnorm_forward_infer(const BatchNormShape& s, const float* x, const float* gamma,
                             const float* beta, const float* moving_mean, const float* moving_var,
                             float* y, float epsilon);
// dx, dgamma and dbeta are overwritten. x is the forward input; save_* come from forward_train.
void batchnorm_backward(const BatchNormShape& s, const float* x, const float* gamma,
                        const float* dy, const float* save_mean, const float* save_invstd,
                        float* dx, float* dgamma, float* dbeta);

}  // namespace fer::kernels::cpu
