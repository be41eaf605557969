#include "kernels/cpu/dense.h"

#include <cstring>

#include "kernels/cpu/dense_bf16.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/parallel.h"

namespace fer::kernels::cpu {

void dense_forward(const DenseShape& s, const float* x, const float* w, const float* b, float* y) {
  if (s.math == MathType::bf16) {
    dense_bf16::forward(s, x, w, b, y);
    return;
  }
  for (int i = 0; i < s.n; ++i) {
    if (b) {
      std::memcpy(y + int64_t(i) * s.out, b, sizeof(float) * size_t(s.out));
    } else {
      std::memset(y + int64_t(i) * s.out, 0, sizeof(float) * size_t(s.out));
    }
  }
  if (s.n == 0 || s.out == 0 || s.in == 0) return;
  // y[n, out] += x[n, in] w[in, out]
  detail::parallel_sgemm(false, false, s.n, s.out, s.in, 1.0f, x, s.in, w, s.out, 1.0f, y, s.out);
}

void dense_backward(const DenseShape& s, const float* x, const float* w, const float* dy, float* dx,
                    float* dw, float* db) {
  if (s.math == MathType::bf16) {
    dense_bf16::backward(s, x, w, dy, dx, dw, db);
    return;
  }
  if (db) detail::column_sums(dy, s.n, s.out, db);
  if (s.n == 0 || s.out == 0 || s.in == 0) {
    std::memset(dw, 0, sizeof(float) * size_t(s.in) * size_t(s.out));
    if (dx) std::memset(dx, 0, sizeof(float) * size_t(s.n) * size_t(s.in));
    return;
  }
  // dw[in, out] = x^T dy
  detail::parallel_sgemm(true, false, s.in, s.out, s.n, 1.0f, x, s.in, dy, s.out, 0.0f, dw, s.out);
  // dx[n, in] = dy w^T
  if (dx) {
    detail::parallel_sgemm(false, true, s.n, s.in, s.out, 1.0f, dy, s.out, w, s.out, 0.0f, dx,
                           s.in);
  }
}

}  // namespace fer::kernels::cpu
