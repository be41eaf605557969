// One Philox call yields four uniforms: thread g handles stream elements 4G..4G+3, G = first / 4
// + g, with words 0..3 of counter (G, stream_id), exactly the element -> (counter, word) map of
// philox_uniform_at; stream element e is the call's element e - first (skipped outside [0, n)).
#include "kernels/common/philox.h"
#include "kernels/cuda/dropout.cuh"
#include "kernels/cuda/launch_util.cuh"

namespace fer::kernels::cuda {
namespace {

__global__ void dropout_kernel(int64_t n, float rate, float scale, uint64_t seed,
                               uint64_t stream_id, uint64_t first, const float* in, float* out) {
  const int64_t groups = int64_t((first + uint64_t(n) + 3) / 4 - first / 4);
  for (int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; g < groups;
       g += int64_t(gridDim.x) * blockDim.x) {
    const uint64_t ug = first / 4 + uint64_t(g);
    const Philox4 r = philox4x32(uint32_t(ug), uint32_t(ug >> 32), uint32_t(stream_id),
                                 uint32_t(stream_id >> 32), seed);
    for (int j = 0; j < 4; ++j) {
      const int64_t i = int64_t(ug * 4 + uint64_t(j) - first);  // may be < 0 in the first group
      if (i < 0) continue;
      if (i >= n) break;
      const bool keep = philox_uniform(r.v[j]) >= rate;
      out[i] = keep ? in[i] * scale : 0.0f;
    }
  }
}

}  // namespace

cudaError_t dropout_apply(int64_t n, float rate, uint64_t seed, uint64_t stream_id, uint64_t first,
                          const float* in, float* out, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  // rate <= 0 keeps everything unscaled (a copy); rate >= 1 drops everything (every uniform < 1),
  // so its scale is never used.
  const float scale = rate <= 0.0f ? 1.0f : rate < 1.0f ? 1.0f / (1.0f - rate) : 0.0f;
  const int64_t groups = int64_t((first + uint64_t(n) + 3) / 4 - first / 4);
  dropout_kernel<<<grid_for(groups), kBlock, 0, stream>>>(n, rate, scale, seed, stream_id, first,
                                                           in, out);
  return cudaGetLastError();
}

}  // namespace fer::kernels::cuda
