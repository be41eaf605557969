// The row split of the two-stage per-channel reductions (kernels/cuda/launch_util.cuh), host-only:
// every row in exactly one chunk, no empty chunk, the scratch bound kept, and the split a function
// of (rows, channels, sums, scratch) only.
#include <gtest/gtest.h>

#include "kernels/cuda/launch_util.cuh"

namespace fer::kernels::cuda {
namespace {

TEST(ChannelReducePlan, ChunksCoverEveryRowOnceWithinTheScratch) {
  const int64_t rows_list[] = {0, 1, 7, 255, 256, 257, 4608, 128 * 24 * 24, 128 * 48 * 48, 10000019};
  const int channels_list[] = {1, 3, 32, 33, 64, 512, 1031, 4096, 100000};
  for (int64_t rows : rows_list) {
    for (int channels : channels_list) {
      for (int sums : {1, 2}) {
        const ChannelReducePlan p = plan_channel_reduce(rows, channels, sums);
        ASSERT_GE(p.chunks, 1);
        ASSERT_LE(p.chunks, kReduceMaxChunks);
        ASSERT_LE(p.scratch_bytes, kReduceScratchBytes) << rows << "x" << channels;
        ASSERT_EQ(p.scratch_bytes, size_t(p.chunks) * size_t(sums) * size_t(channels) * sizeof(double));
        // Chunks [k*rpc, min((k+1)*rpc, rows)) cover [0, rows), none empty.
        ASSERT_GE(p.chunks * p.rows_per_chunk, rows);
        if (rows > 0) {
          ASSERT_LT((p.chunks - 1) * p.rows_per_chunk, rows) << "empty last chunk";
        }
        const ChannelReducePlan again = plan_channel_reduce(rows, channels, sums);
        ASSERT_EQ(again.chunks, p.chunks);
        ASSERT_EQ(again.rows_per_chunk, p.rows_per_chunk);
      }
    }
  }
}

TEST(ChannelReducePlan, ThirtyTwoChannelLayerSpreadsOverTheGpu) {
  // model5's first block: n*h*w = 128*48*48 rows of 32 channels, formerly ONE block.
  const ChannelReducePlan p = plan_channel_reduce(128 * 48 * 48, 32, 2);
  EXPECT_EQ(p.chunks, kReduceMaxChunks);   // 1024 blocks for 132 SMs
  EXPECT_EQ(p.rows_per_chunk, 288);        // 36 KiB read per block
  // A dense layer's bias: 128 rows, one chunk (nothing to split).
  EXPECT_EQ(plan_channel_reduce(128, 1024, 1).chunks, 1);
}

TEST(ChannelReducePlan, SmallScratchLimitsChunks) {
  const ChannelReducePlan p = plan_channel_reduce(1 << 20, 1024, 2, size_t(64) << 10);
  EXPECT_EQ(p.chunks, 4);  // 64 KiB / (2 * 1024 * 8 B)
  EXPECT_LE(p.scratch_bytes, size_t(64) << 10);
}

}  // namespace
}  // namespace fer::kernels::cuda
