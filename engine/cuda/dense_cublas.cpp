// Dense layers on the GPU: CudaBackend::dense_* through cuBLAS.
#include <cublas_v2.h>

#include <string>

#include "engine/cuda/backend_impl.h"
#include "kernels/cuda/bias.cuh"
#include "kernels/cuda/launch_util.cuh"

namespace fer {

namespace kc = kernels::cuda;
using cuda_detail::ensure_device;

std::string describe(const DenseShape& s) {
  return "dense x[" + std::to_string(s.n) + "," + std::to_string(s.in) + "] w[" +
         std::to_string(s.in) + "," + std::to_string(s.out) + "]";
}

// ------------------------------------------------------------------------------------------------
// Dense: row-major y[n,out] = x[n,in] W[in,out] + b. cuBLAS is column-major, where a row-major
// [r,c] matrix reads as its transpose [c,r] with leading dimension c; so y^T = W^T x^T is
// gemm(N, N, m=out, n=n, k=in, A=W (ld out), B=x (ld in), C=y (ld out)).

void CudaBackend::dense_forward(const DenseShape& s, const float* x, const float* w,
                                const float* b, float* y) {
  Impl& m = *impl_;
  ensure_device(m.device);
  if (s.n <= 0 || s.out <= 0) return;
  const auto what = [&] { return describe(s); };
  const float one = 1.0f, zero = 0.0f;
  FER_CUBLAS_CHECK(cublasSgemm(m.cublas, CUBLAS_OP_N, CUBLAS_OP_N, s.out, s.n, s.in, &one, w,
                               s.out, x, s.in, &zero, y, s.out),
                   what());
  if (b) FER_CUDA_CHECK(kc::bias_add(s.n, s.out, b, y, m.stream), what());
  m.after_op("dense_forward", what);
}

void CudaBackend::dense_backward(const DenseShape& s, const float* x, const float* w,
                                 const float* dy, float* dx, float* dw, float* db) {
  Impl& m = *impl_;
  ensure_device(m.device);
  const auto what = [&] { return describe(s); };
  const float one = 1.0f, zero = 0.0f;
  if (dx && s.n > 0 && s.in > 0) {
    // dx^T [in,n] = W [in,out] dy^T [out,n]: W stored as W^T (out x in, ld out) -> op T.
    FER_CUBLAS_CHECK(cublasSgemm(m.cublas, CUBLAS_OP_T, CUBLAS_OP_N, s.in, s.n, s.out, &one, w,
                                 s.out, dy, s.out, &zero, dx, s.in),
                     what());
  }
  if (dw && s.in > 0 && s.out > 0) {
    // dW^T [out,in] = dy^T [out,n] x [n,in]: x stored as x^T (in x n, ld in) -> op T.
    FER_CUBLAS_CHECK(cublasSgemm(m.cublas, CUBLAS_OP_N, CUBLAS_OP_T, s.out, s.in, s.n, &one, dy,
                                 s.out, x, s.in, &zero, dw, s.out),
                     what());
  }
  if (db) FER_CUDA_CHECK(kc::bias_grad(s.n, s.out, dy, db, m.reduce_scratch, kc::kReduceScratchBytes, m.stream), what());
  m.after_op("dense_backward", what);
}

}  // namespace fer
