#pragma once
// Element-wise activations on the CPU. relu/linear act on all n elements; softmax acts on each row
// of `cols` (n = rows * cols). y may alias x and dx may alias dy (exactly, for in-place use).
#include <cstdint>

#include "kernels/common/shapes.h"

namespace fer::kernels::cpu {

void activation_forward(Act act, int64_t n, int cols, const float* x, float* y);
// Gradients are expressed through the forward output y: relu' = (y > 0), softmax' via y.
void activation_backward(Act act, int64_t n, int cols, const float* y, const float* dy, float* dx);

}  // namespace fer::kernels::cpu
