#pragma once
// Batch gather from a data set held in memory (the resident-data path of the trainer): copies the
// rows a batch names, by index, into the batch buffers. No knowledge of files or splits.
#include <cstdint>

namespace fer::kernels::cpu {

// For i < n, with r = indices[i] (0 <= r < rows of the source):
//   dst_images[i*row_bytes .. +row_bytes) = images[r*row_bytes .. +row_bytes)
//   dst_labels[i] = labels[r]            (skipped when labels or dst_labels is null)
// The source and destination must not overlap.
void gather_rows(int n, const int32_t* indices, const uint8_t* images, const int32_t* labels,
                 int64_t row_bytes, uint8_t* dst_images, int32_t* dst_labels);

}  // namespace fer::kernels::cpu
