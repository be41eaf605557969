#pragma once
// The oracle: naive, obviously correct implementations of every Backend op, in double precision
// (plain nested loops, double accumulation, nothing clever). Same semantics and argument order as
// the Backend methods in engine/backend.h, with double tensors; labels stay int32 and dropout uses
// the shared kernels::dropout_keep so masks match every backend bit for bit.
#include <cstdint>

#include "kernels/common/shapes.h"

namespace fer::reference {

using kernels::Act;
using kernels::AdamParams;
using kernels::BatchNormShape;
using kernels::ConvShape;
using kernels::DenseShape;
using kernels::PoolMode;
using kernels::PoolShape;
using kernels::SgdParams;

// y[n, oy, ox, k] = b[k] + sum_{r, q, ch} x[n, oy*sh - pt + r, ox*sw - pl + q, ch] * w[k, r, q, ch]
// (taps outside the image read zero). b may be null.
void conv2d_forward(const ConvShape& s, const double* x, const double* w, const double* b,
                    double* y);
// dw, db (may be null) and dx (may be null) are overwritten.
void conv2d_backward(const ConvShape& s, const double* x, const double* w, const double* dy,
                     double* dx, double* dw, double* db);

void dense_forward(const DenseShape& s, const double* x, const double* w, const double* b,
                   double* y);
void dense_backward(const DenseShape& s, const double* x, const double* w, const double* dy,
                    double* dx, double* dw, double* db);

void activation_forward(Act act, int64_t n, int cols, const double* x, double* y);
void activation_backward(Act act, int64_t n, int cols, const double* y, const double* dy,
                         double* dx);

void batchnorm_forward_train(const BatchNormShape& s, const double* x, const double* gamma,
                             const double* beta, double* y, double* save_mean, double* save_invstd,
                             double* moving_mean, double* moving_var, double momentum,
                             double epsilon);
void batchnorm_forward_infer(const BatchNormShape& s, const double* x, const double* gamma,
                             const double* beta, const double* moving_mean,
                             const double* moving_var, double* y, double epsilon);
void batchnorm_backward(const BatchNormShape& s, const double* x, const double* gamma,
                        const double* dy, const double* save_mean, const double* save_invstd,
                        double* dx, double* dgamma, double* dbeta);

void pool2d_forward(const PoolShape& s, PoolMode mode, const double* x, double* y);
// Max: each window's gradient goes to the first maximum of the window in row-major order
// (found by a strict '>' scan of x; y is not consulted). dx is overwritten.
void pool2d_backward(const PoolShape& s, PoolMode mode, const double* x, const double* y,
                     const double* dy, double* dx);

// y[i] = dropout_keep(seed, stream_id, i, rate) ? x[i] / (1 - rate) : 0.
void dropout_forward(int64_t n, float rate, uint64_t seed, uint64_t stream_id, const double* x,
                     double* y);
void dropout_backward(int64_t n, float rate, uint64_t seed, uint64_t stream_id, const double* dy,
                      double* dx);

// metrics[0] += sum of -log softmax(z)[label]; metrics[1] += rows whose first argmax == label.
// dlogits (may be null) = (softmax - onehot) * grad_scale.
void softmax_cross_entropy(int rows, int classes, const double* logits, const int32_t* labels,
                           double* dlogits, double grad_scale, double* metrics);

void adam_update(int64_t n, double* params, const double* grads, double* m, double* v,
                 const AdamParams& p);
void sgd_update(int64_t n, double* params, const double* grads, double* velocity,
                const SgdParams& p);

}  // namespace fer::reference
