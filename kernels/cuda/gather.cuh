#pragma once
// Batch gather from a data set resident in device memory. Thin launcher; safe to include from
// host C++ (no CUDA syntax here).
#include <cstdint>

#include <cuda_runtime_api.h>

namespace fer::kernels::cuda {

// Same contract as kernels::cpu::gather_rows; every pointer is device memory. Returns the launch
// status.
cudaError_t gather_rows(int n, const int32_t* indices, const uint8_t* images, const int32_t* labels,
                        int64_t row_bytes, uint8_t* dst_images, int32_t* dst_labels,
                        cudaStream_t stream);

}  // namespace fer::kernels::cuda
