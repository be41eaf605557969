#pragma once
// Inverted dropout on the CPU. Element i is kept when kernels::dropout_keep(seed, stream_id, i,
// rate) (kernels/common/philox.h), so masks are bit-identical with the GPU and never stored:
// backward recomputes them. Kept values are multiplied by 1 / (1 - rate) (float), dropped are 0.
#include <cstdint>

namespace fer::kernels::cpu {

void dropout_forward(int64_t n, float rate, uint64_t seed, uint64_t stream_id, const float* x,
                     float* y);
void dropout_backward(int64_t n, float rate, uint64_t seed, uint64_t stream_id, const float* dy,
                      float* dx);

}  // namespace fer::kernels::cpu
