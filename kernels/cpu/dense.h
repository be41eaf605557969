#pragma once
// Fully connected layer on the CPU: y[n, out] = x[n, in] * w[in, out] + b[out] (OpenBLAS SGEMM;
// s.math == MathType::bf16: bf16 operands, FP32 accumulation, kernels/cpu/dense_bf16.h).
#include "kernels/common/shapes.h"

namespace fer::kernels::cpu {

// b may be null (no bias).
void dense_forward(const DenseShape& s, const float* x, const float* w, const float* b, float* y);
// dw and db are overwritten; dx may be null (nothing upstream), db may be null (no bias).
void dense_backward(const DenseShape& s, const float* x, const float* w, const float* dy, float* dx,
                    float* dw, float* db);

}  // namespace fer::kernels::cpu
