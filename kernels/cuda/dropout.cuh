#pragma once
// Inverted dropout with a mask recomputed from (seed, stream_id) by kernels::dropout_keep
// (kernels/common/philox.h): element i is kept when the uniform of stream element first + i is
// >= rate and then scaled by 1/(1-rate); the CPU backend draws the same bits, so the masks are
// identical (kernels/cpu/dropout.h says what `first` is for). Host-includable.
#include <cstdint>

#include <cuda_runtime_api.h>

namespace fer::kernels::cuda {

// out[i] = keep(i) ? in[i] * (1/(1-rate)) : 0; used for forward (x -> y) and backward (dy -> dx).
// out may alias in. rate >= 1 drops everything.
cudaError_t dropout_apply(int64_t n, float rate, uint64_t seed, uint64_t stream_id, uint64_t first,
                          const float* in, float* out, cudaStream_t stream);

}  // namespace fer::kernels::cuda
