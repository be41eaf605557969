#pragma once
// Row-major SGEMM helpers over OpenBLAS for the CPU kernels.
//
// Threading model: OpenMP is the only thread pool. OpenBLAS is switched to one thread on first
// use, and the kernels split their GEMMs across OpenMP threads themselves. (Two busy-waiting
// pools on the same cores, libgomp's and OpenBLAS's, halved conv throughput on a 2-core host.)
#include <cstdint>

namespace fer::kernels::cpu::detail {

// Idempotent and cheap after the first call: makes OpenBLAS run in the calling thread.
void use_single_threaded_blas();

// C[M, N] = alpha * op(A) op(B) + beta * C in the calling thread (row-major; lda/ldb/ldc are
// row strides of the stored matrices).
void sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
           const float* b, int ldb, float beta, float* c, int ldc);

// The same product split across the OpenMP team by rows or columns of C (whichever is larger);
// small products run in the calling thread. In builds with oneDNN, products with an untransposed
// B go to oneDNN's threaded SGEMM instead (faster there; see gemm.cpp). Must not be called from
// inside a parallel region.
void parallel_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a,
                    int lda, const float* b, int ldb, float beta, float* c, int ldc);

}  // namespace fer::kernels::cpu::detail
