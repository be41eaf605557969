#include "kernels/cpu/gather.h"

#include <cstring>

namespace fer::kernels::cpu {

void gather_rows(int n, const int32_t* indices, const uint8_t* images, const int32_t* labels,
                 int64_t row_bytes, uint8_t* dst_images, int32_t* dst_labels) {
  // One memcpy per row (2304 bytes for FER2013); threads only pay off for large batches.
#pragma omp parallel for schedule(static) if (int64_t(n) * row_bytes > (int64_t(1) << 20))
  for (int i = 0; i < n; ++i) {
    const int64_t r = indices[i];
    std::memcpy(dst_images + int64_t(i) * row_bytes, images + r * row_bytes, size_t(row_bytes));
  }
  if (labels && dst_labels) {
    for (int i = 0; i < n; ++i) dst_labels[i] = labels[indices[i]];
  }
}

}  // namespace fer::kernels::cpu
