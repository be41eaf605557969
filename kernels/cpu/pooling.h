#pragma once
// 2-D max/average pooling on the CPU, "valid" windows, NHWC. Global average pooling is average
// pooling with the window equal to the whole map.
#include "kernels/common/shapes.h"

namespace fer::kernels::cpu {

void pool2d_forward(const PoolShape& s, PoolMode mode, const float* x, float* y);
// dx is overwritten (zero where no window routes a gradient; overlapping windows accumulate).
// Max pooling routes each window's gradient to its first maximum in row-major window order,
// found again as the first x equal to the window's y.
void pool2d_backward(const PoolShape& s, PoolMode mode, const float* x, const float* y,
                     const float* dy, float* dx);

}  // namespace fer::kernels::cpu
