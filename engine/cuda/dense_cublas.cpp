// Dense layers on the GPU: CudaBackend::dense_* through cuBLAS.
#include <cublas_v2.h>

#include <string>

#include "engine/cuda/backend_impl.h"
#include "kernels/cuda/bias.cuh"
#include "kernels/cuda/cast.cuh"
#include "kernels/cuda/launch_util.cuh"

namespace fer {

namespace kc = kernels::cuda;
using cuda_detail::ensure_device;

std::string describe(const DenseShape& s) {
  return "dense x[" + std::to_string(s.n) + "," + std::to_string(s.in) + "] w[" +
         std::to_string(s.in) + "," + std::to_string(s.out) + "]" +
         (s.math == kernels::MathType::bf16 ? " bf16" : "");
}

// ------------------------------------------------------------------------------------------------
// Dense: row-major y[n,out] = x[n,in] W[in,out] + b. cuBLAS is column-major, where a row-major
// [r,c] matrix reads as its transpose [c,r] with leading dimension c; so y^T = W^T x^T is
// gemm(N, N, m=out, n=n, k=in, A=W (ld out), B=x (ld in), C=y (ld out)).
//
// bf16 (MathType::bf16): A and B are bf16 copies of the FP32 operands (kernels/cuda/cast.cuh, in
// a backend-owned buffer), multiplied by cublasGemmEx with CUDA_R_16BF inputs, an FP32 output
// and CUBLAS_COMPUTE_32F: FP32 accumulation and FP32 results, as on the CPU backend (oneDNN's
// bf16 matmul with an f32 destination). The bias and its gradient stay FP32.

namespace {

bool is_bf16(const DenseShape& s) { return s.math == kernels::MathType::bf16; }

// C (FP32, column-major [mm, nn], ld ldc) = op(A) op(B), k the inner dimension; A and B are FP32,
// or bf16 bit patterns when s is a bf16 shape.
template <class What>
void gemm(cublasHandle_t h, const DenseShape& s, cublasOperation_t ta, cublasOperation_t tb,
          int mm, int nn, int k, const void* a, int lda, const void* b, int ldb, float* c, int ldc,
          const What& what) {
  const float one = 1.0f, zero = 0.0f;
  if (is_bf16(s)) {
    FER_CUBLAS_CHECK(cublasGemmEx(h, ta, tb, mm, nn, k, &one, a, CUDA_R_16BF, lda, b, CUDA_R_16BF,
                                  ldb, &zero, c, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                                  CUBLAS_GEMM_DEFAULT),
                     what());
  } else {
    FER_CUBLAS_CHECK(cublasSgemm(h, ta, tb, mm, nn, k, &one, static_cast<const float*>(a), lda,
                                 static_cast<const float*>(b), ldb, &zero, c, ldc),
                     what());
  }
}

// Where the bf16 copies of one dense call's operands lie in Impl::dense_bf16.
struct DenseBf16Parts {
  uint16_t* x = nullptr;   // [n, in]
  uint16_t* w = nullptr;   // [in, out]
  uint16_t* dy = nullptr;  // [n, out]
};

}  // namespace

// The bf16 operand buffer for shape s (nothing for FP32 shapes). Grows it, draining the stream
// first, when s needs more than any shape before: the first step allocates, later steps do not.
static DenseBf16Parts dense_bf16_parts(CudaBackend& backend, CudaBackend::Impl& m,
                                       const DenseShape& s) {
  if (!is_bf16(s)) return {};
  using cuda_detail::align_up;
  const size_t xb = align_up(size_t(s.n) * size_t(s.in) * 2);
  const size_t wb = align_up(size_t(s.in) * size_t(s.out) * 2);
  const size_t yb = align_up(size_t(s.n) * size_t(s.out) * 2);
  if (xb + wb + yb > m.dense_bf16_bytes) {
    FER_CUDA_CHECK(cudaStreamSynchronize(m.stream), describe(s));
    if (m.dense_bf16) backend.deallocate(m.dense_bf16);
    m.dense_bf16 = nullptr;
    m.dense_bf16_bytes = 0;
    m.dense_bf16 = backend.allocate(xb + wb + yb);
    m.dense_bf16_bytes = xb + wb + yb;
  }
  char* base = static_cast<char*>(m.dense_bf16);
  return {reinterpret_cast<uint16_t*>(base), reinterpret_cast<uint16_t*>(base + xb),
          reinterpret_cast<uint16_t*>(base + xb + wb)};
}

// `src` as the GEMM reads it: itself, or (bf16 shapes) its bf16 copy in `dst`.
template <class What>
static const void* operand(const DenseShape& s, const float* src, int64_t n, uint16_t* dst,
                           cudaStream_t stream, const What& what) {
  if (!is_bf16(s)) return src;
  FER_CUDA_CHECK(kernels::cuda::float_to_bf16(n, src, dst, stream), what());
  return dst;
}

void CudaBackend::dense_forward(const DenseShape& s, const float* x, const float* w,
                                const float* b, float* y) {
  Impl& m = *impl_;
  ensure_device(m.device);
  if (s.n <= 0 || s.out <= 0) return;
  const auto what = [&] { return describe(s); };
  const DenseBf16Parts parts = dense_bf16_parts(*this, m, s);
  const void* wa = operand(s, w, int64_t(s.in) * s.out, parts.w, m.stream, what);
  const void* xa = operand(s, x, int64_t(s.n) * s.in, parts.x, m.stream, what);
  gemm(m.cublas, s, CUBLAS_OP_N, CUBLAS_OP_N, s.out, s.n, s.in, wa, s.out, xa, s.in, y, s.out,
       what);
  if (b) FER_CUDA_CHECK(kc::bias_add(s.n, s.out, b, y, m.stream), what());
  m.after_op("dense_forward", what);
}

void CudaBackend::dense_backward(const DenseShape& s, const float* x, const float* w,
                                 const float* dy, float* dx, float* dw, float* db) {
  Impl& m = *impl_;
  ensure_device(m.device);
  const auto what = [&] { return describe(s); };
  const bool want_dx = dx && s.n > 0 && s.in > 0;
  const bool want_dw = dw && s.in > 0 && s.out > 0;
  const DenseBf16Parts parts = (want_dx || want_dw) ? dense_bf16_parts(*this, m, s) : DenseBf16Parts{};
  const void* dya =
      (want_dx || want_dw) ? operand(s, dy, int64_t(s.n) * s.out, parts.dy, m.stream, what) : nullptr;
  if (want_dx) {
    // dx^T [in,n] = W [in,out] dy^T [out,n]: W stored as W^T (out x in, ld out) -> op T.
    const void* wa = operand(s, w, int64_t(s.in) * s.out, parts.w, m.stream, what);
    gemm(m.cublas, s, CUBLAS_OP_T, CUBLAS_OP_N, s.in, s.n, s.out, wa, s.out, dya, s.out, dx, s.in,
         what);
  }
  if (want_dw) {
    // dW^T [out,in] = dy^T [out,n] x [n,in]: x stored as x^T (in x n, ld in) -> op T.
    const void* xa = operand(s, x, int64_t(s.n) * s.in, parts.x, m.stream, what);
    gemm(m.cublas, s, CUBLAS_OP_N, CUBLAS_OP_T, s.out, s.in, s.n, dya, s.out, xa, s.in, dw, s.out,
         what);
  }
  if (db) FER_CUDA_CHECK(kc::bias_grad(s.n, s.out, dy, db, m.reduce_scratch, kc::kReduceScratchBytes, m.stream), what());
  m.after_op("dense_backward", what);
}

}  // namespace fer
