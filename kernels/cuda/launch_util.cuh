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

namespace fer::kernels::cuda {

// Per-channel reductions over x[rows, channels] (bias gradients, batch-norm statistics) run in two
// stages: stage 1 splits the rows into `chunks` consecutive ranges of rows_per_chunk rows (the
// last may be shorter) and writes one partial sum per (chunk, channel); stage 2 adds a channel's
// partials in a fixed order. The split depends on rows, channels and the scratch size only (never
// on the device), so results are bitwise the same on every GPU and every run.
//
// Why two stages: one block per 32 channels, each walking every row, gives a 32-channel layer
// ONE block (of 132 multiprocessors on an H200) to stream 128*48*48*32*4 B = 37.7 MB, about
// 1-2 ms a pass at what one SM can pull; chunks spread those bytes over the whole GPU.
constexpr int64_t kReduceMinRowsPerChunk = 256;  // enough work per block to hide its start
constexpr int64_t kReduceMaxChunks = 1024;       // ~8 blocks per SM on 132 SMs
constexpr size_t kReduceScratchBytes = size_t(8) << 20;

struct ChannelReducePlan {
  int64_t chunks = 1;
  int64_t rows_per_chunk = 0;
  size_t scratch_bytes = 0;  // chunks * sums * channels doubles
};

// sums: partial sums per channel (1 for bias, 2 for batch norm). Rows 0 give one empty chunk.
inline ChannelReducePlan plan_channel_reduce(int64_t rows, int channels, int sums,
                                             size_t scratch_bytes = kReduceScratchBytes) {
  ChannelReducePlan p;
  const int64_t per_chunk_bytes = int64_t(sums) * std::max(channels, 1) * int64_t(sizeof(double));
  const int64_t fit = std::max<int64_t>(1, int64_t(scratch_bytes) / per_chunk_bytes);
  const int64_t wanted = (rows + kReduceMinRowsPerChunk - 1) / kReduceMinRowsPerChunk;
  p.chunks = std::clamp<int64_t>(wanted, 1, std::min(kReduceMaxChunks, fit));
  p.rows_per_chunk = (rows + p.chunks - 1) / p.chunks;
  if (p.rows_per_chunk > 0) p.chunks = (rows + p.rows_per_chunk - 1) / p.rows_per_chunk;  // no empty chunk
  p.scratch_bytes = size_t(p.chunks * per_chunk_bytes);
  return p;
}

}  // namespace fer::kernels::cuda
