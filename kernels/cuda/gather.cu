// Batch gather from a resident data set: row indices[i] of the source -> row i of the batch.
#include "kernels/cuda/gather.cuh"
#include "kernels/cuda/launch_util.cuh"

namespace fer::kernels::cuda {
namespace {

// Grid-stride over (row, chunk) pairs; T is the copy unit (uint4 when rows and both bases are
// 16-byte aligned, else a byte). The thread that copies a row's first chunk also copies its label.
template <typename T>
__global__ void gather_rows_kernel(int n, const int32_t* __restrict__ indices,
                                   const T* __restrict__ images, const int32_t* __restrict__ labels,
                                   int64_t row_units, T* __restrict__ dst_images,
                                   int32_t* __restrict__ dst_labels) {
  const int64_t total = int64_t(n) * row_units;
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < total;
       t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = t / row_units, c = t - i * row_units;
    const int64_t r = __ldg(indices + i);
    dst_images[t] = images[r * row_units + c];
    if (c == 0 && dst_labels) dst_labels[i] = __ldg(labels + r);
  }
}

}  // namespace

cudaError_t gather_rows(int n, const int32_t* indices, const uint8_t* images, const int32_t* labels,
                        int64_t row_bytes, uint8_t* dst_images, int32_t* dst_labels,
                        cudaStream_t stream) {
  if (n <= 0 || row_bytes <= 0) return cudaSuccess;
  if (!labels) dst_labels = nullptr;
  const uintptr_t bits = uintptr_t(images) | uintptr_t(dst_images) | uintptr_t(row_bytes);
  if (bits % sizeof(uint4) == 0) {
    const int64_t units = row_bytes / int64_t(sizeof(uint4));
    gather_rows_kernel<uint4><<<grid_for(int64_t(n) * units), kBlock, 0, stream>>>(
        n, indices, reinterpret_cast<const uint4*>(images), labels, units,
        reinterpret_cast<uint4*>(dst_images), dst_labels);
  } else {
    gather_rows_kernel<uint8_t><<<grid_for(int64_t(n) * row_bytes), kBlock, 0, stream>>>(
        n, indices, images, labels, row_bytes, dst_images, dst_labels);
  }
  return cudaGetLastError();
}

}  // namespace fer::kernels::cuda
