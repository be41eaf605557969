#pragma once
// Inverted dropout on the CPU. Element i of a call is kept when kernels::dropout_keep(seed,
// stream_id, first + i, rate) (kernels/common/philox.h), so masks are bit-identical with the GPU
// and never stored: backward recomputes them. Kept values are multiplied by 1 / (1 - rate)
// (float), dropped are 0. `first` places the call's n elements in the stream: a data-parallel
// rank holding rows [r0, r0 + b) of a global batch of rows of F elements passes r0 * F, so each
// row gets the mask one process gives it (engine/training/distributed_training.h); 0 otherwise.
#include <cstdint>

namespace fer::kernels::cpu {

void dropout_forward(int64_t n, float rate, uint64_t seed, uint64_t stream_id, uint64_t first,
                     const float* x, float* y);
void dropout_backward(int64_t n, float rate, uint64_t seed, uint64_t stream_id, uint64_t first,
                      const float* dy, float* dx);

}  // namespace fer::kernels::cpu
