#include "kernels/cpu/gemm.h"

#include <cblas.h>
#include <omp.h>

#include <atomic>

#ifdef FER_HAVE_ONEDNN
#include <dnnl.h>
#endif

namespace fer::kernels::cpu::detail {

void use_single_threaded_blas() {
  static std::atomic<bool> done{false};
  if (!done.load(std::memory_order_acquire)) {
    openblas_set_num_threads(1);
    done.store(true, std::memory_order_release);
  }
}

void sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
           const float* b, int ldb, float beta, float* c, int ldc) {
  if (m <= 0 || n <= 0) return;
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void parallel_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a,
                    int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  use_single_threaded_blas();
  const int threads = omp_get_max_threads();
  const double work = double(m) * double(n) * double(k);
  if (threads <= 1 || work < 2.0e6) {
    sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
#ifdef FER_HAVE_ONEDNN
  // oneDNN's threaded SGEMM (same OpenMP pool) beats the split OpenBLAS calls on the dense
  // layers' large y = x W and dW = x^T dy (mean over 200 calls, 2 Zen 4 cores: 128x2048 by
  // 2048x1024 3.2 vs 4.0 ms, 128x4608 by 4608x256 1.7 vs 2.0 ms) but not on small ones (128x256
  // by 256x512: 0.53 vs 0.25 ms) nor on dx = dy W^T (104 vs 160 GFLOP/s), which stay below.
  if (m > 0 && n > 0 && !trans_b && work >= 5.0e7) {
    if (dnnl_sgemm(trans_a ? 'T' : 'N', 'N', m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) ==
        dnnl_success) {
      return;
    }
  }
#endif
  const bool split_rows = m >= n;
  const int extent = split_rows ? m : n;
  // Slices are multiples of 16 so each thread's panel stays vector-aligned in C.
  const int parts = threads;
#pragma omp parallel num_threads(parts)
  {
    const int t = omp_get_thread_num(), team = omp_get_num_threads();
    int per = (extent + team - 1) / team;
    per = (per + 15) / 16 * 16;
    const int lo = t * per, hi = lo + per < extent ? lo + per : extent;
    if (lo < hi) {
      if (split_rows) {
        // Rows [lo, hi) of C use rows [lo, hi) of op(A).
        const float* a_part = trans_a ? a + lo : a + int64_t(lo) * lda;
        sgemm(trans_a, trans_b, hi - lo, n, k, alpha, a_part, lda, b, ldb, beta,
              c + int64_t(lo) * ldc, ldc);
      } else {
        // Columns [lo, hi) of C use columns [lo, hi) of op(B).
        const float* b_part = trans_b ? b + int64_t(lo) * ldb : b + lo;
        sgemm(trans_a, trans_b, m, hi - lo, k, alpha, a, lda, b_part, ldb, beta, c + lo, ldc);
      }
    }
  }
}

}  // namespace fer::kernels::cpu::detail
