// Host-only checks (no GPU needed) of index arithmetic shared with the CUDA kernels through
// host/device functions: the pooling backward gather must visit exactly the windows that contain
// each input element.
#include <gtest/gtest.h>

#include <vector>

#include "kernels/cuda/pooling.cuh"

namespace fer {
namespace {

TEST(PoolCoveringWindows, MatchesBruteForce) {
  for (int size = 1; size <= 13; ++size) {
    for (int window = 1; window <= size; ++window) {
      for (int stride = 1; stride <= 4; ++stride) {
        const int out = (size - window) / stride + 1;
        for (int i = 0; i < size; ++i) {
          std::vector<int> want;
          for (int o = 0; o < out; ++o) {
            if (o * stride <= i && i < o * stride + window) want.push_back(o);
          }
          int lo = 0, hi = 0;
          kernels::cuda::pool_covering_windows(i, window, stride, out, &lo, &hi);
          std::vector<int> got;
          for (int o = lo; o <= hi; ++o) got.push_back(o);
          ASSERT_EQ(got, want) << "size " << size << " window " << window << " stride " << stride
                               << " i " << i;
        }
      }
    }
  }
}

}  // namespace
}  // namespace fer
