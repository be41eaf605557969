#pragma once
// Dense layers with MathType::bf16 operands (called by dense_forward / dense_backward in dense.h
// when s.math is bf16): y = x W + b, dW = x^T dy, dx = dy W^T with x, W and dy rounded to bf16,
// products accumulated in FP32, every output (y, dW, db, dx) FP32; db = column sums of the FP32
// dy (no rounding).
//
// Native (bf16.h): three oneDNN matmul primitives per DenseShape with bf16 operands in the layouts
// oneDNN prefers (format "any"), filled by reorders that convert FP32 -> bf16 as they re-layout;
// FP32 dst. Emulated: the operands rounded into FP32 copies, then the FP32 GEMMs.
//
// Everything a shape needs (primitives, reorders, their scratchpads and the operand buffers) is
// built and allocated on the shape's first call and kept for the process: a training step
// allocates nothing after its first. Calls on one shape from two threads at once are serialised.
#include "kernels/common/shapes.h"

namespace fer::kernels::cpu::dense_bf16 {

void forward(const DenseShape& s, const float* x, const float* w, const float* b, float* y);
void backward(const DenseShape& s, const float* x, const float* w, const float* dy, float* dx,
              float* dw, float* db);
// "onednn-bf16" or "bf16-emulated": what the next call on this shape runs.
const char* impl_for(const DenseShape& s);

}  // namespace fer::kernels::cpu::dense_bf16
