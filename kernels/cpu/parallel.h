#pragma once
// Small helpers shared by the CPU kernels: OpenMP thread counts, per-call scratch that is reused
// between calls (no allocation in the steady state), and per-column reductions over row-major
// [rows, cols] matrices with double accumulators.
#include <omp.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace fer::kernels::cpu::detail {

// Below this many elements an op runs in the calling thread: waking the team costs more than the
// work, and on a busy host (the data loader, other processes) every parallel region can wait a
// scheduler tick for a descheduled worker.
constexpr int64_t kMinParallelElements = int64_t(1) << 15;

// Rows per parallel task for row-block reductions: big enough that the per-thread partial sums
// are cheap to merge, small enough that two cores share the work evenly.
inline int64_t reduction_row_block(int64_t rows) {
  const int64_t threads = omp_get_max_threads();
  int64_t block = (rows + threads - 1) / (threads > 0 ? threads : 1);
  return block < 1 ? 1 : block;
}

// Scratch owned by the calling host thread, grown on demand and kept for the next call. OpenMP
// workers write disjoint slices of it while the caller waits at the end of the parallel region.
inline double* scratch_doubles(size_t count) {
  static thread_local std::vector<double> buffer;
  if (buffer.size() < count) buffer.resize(count);
  return buffer.data();
}

// out[j] = sum_i a[i * cols + j], accumulated in double, written as float.
inline void column_sums(const float* a, int64_t rows, int cols, float* out) {
  const int threads = omp_get_max_threads();
  const int64_t block = reduction_row_block(rows);
  const int64_t blocks = rows == 0 ? 0 : (rows + block - 1) / block;
  double* partial = scratch_doubles(size_t(threads) * size_t(cols));
  for (size_t i = 0; i < size_t(threads) * size_t(cols); ++i) partial[i] = 0.0;
#pragma omp parallel num_threads(threads) if (rows * cols >= kMinParallelElements)
  {
    double* acc = partial + size_t(omp_get_thread_num()) * size_t(cols);
#pragma omp for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t end = (b + 1) * block < rows ? (b + 1) * block : rows;
      for (int64_t i = b * block; i < end; ++i) {
        const float* row = a + i * cols;
#pragma omp simd
        for (int j = 0; j < cols; ++j) acc[j] += double(row[j]);
      }
    }
  }
  for (int j = 0; j < cols; ++j) {
    double s = 0.0;
    for (int t = 0; t < threads; ++t) s += partial[size_t(t) * size_t(cols) + size_t(j)];
    out[j] = float(s);
  }
}

}  // namespace fer::kernels::cpu::detail
