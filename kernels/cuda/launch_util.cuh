#pragma once
// Host-side launch arithmetic shared by the kernels in kernels/cuda/ (plain C++, no CUDA syntax).
#include <algorithm>
#include <cstdint>

namespace fer::kernels::cuda {

constexpr int kBlock = 256;  // threads per block of the element-wise kernels

// Blocks for a grid-stride loop over n items: enough to fill the GPU, capped so the grid stays
// small (each thread then handles several items).
inline unsigned grid_for(int64_t n, int block = kBlock) {
  const int64_t blocks = (n + block - 1) / block;
  return unsigned(std::clamp<int64_t>(blocks, 1, int64_t(1) << 16));
}

}  // namespace fer::kernels::cuda
