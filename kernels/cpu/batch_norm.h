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

// Synchronized batch normalisation (data-parallel ranks; PyTorch's SyncBatchNorm split): each rank
// adds its per-channel sums, the caller all-reduces them and normalises with
// batchnorm_forward_infer(global mean, global biased variance); backward the same with
// batchnorm_backward_sums and batchnorm_backward_apply. Sums are double, overwritten:
// sums[0, C) = sum over rows of (x - shift), sums[C, 2C) = sum of (x - shift)^2. shift[C]: the same
// on every rank (the moving mean) so that a large mean does not cancel the variance away.
void batchnorm_sums(const BatchNormShape& s, const float* x, const float* shift, double* sums);
// sums[0, C) = sum of dy, sums[C, 2C) = sum of dy * (x - mean), over the rows.
void batchnorm_backward_sums(const BatchNormShape& s, const float* x, const float* dy, const float* mean,
                             double* sums);
// dx = k (dy - mean_dy - (x - mean) mean_dyxhat_invstd), per channel: with k = gamma invstd,
// mean_dy = global sum dy / global rows, mean_dyxhat_invstd = global sum dy (x - mean) invstd^2 /
// global rows, this is the BatchNormalization input gradient over the whole global batch.
void batchnorm_backward_apply(const BatchNormShape& s, const float* x, const float* dy, const float* mean,
                              const float* k, const float* mean_dy, const float* mean_dyxhat_invstd, float* dx);

}  // namespace fer::kernels::cpu
