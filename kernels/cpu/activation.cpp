#include "kernels/cpu/activation.h"

#include <cmath>
#include <cstring>
#include <stdexcept>

#include "kernels/cpu/parallel.h"

namespace fer::kernels::cpu {
namespace {

void copy_if_distinct(int64_t n, const float* src, float* dst) {
  if (src != dst) std::memmove(dst, src, sizeof(float) * size_t(n));
}

// Runs row(r) for every row of an [n / cols, cols] softmax, rows split over the OpenMP pool.
// Throws std::invalid_argument unless cols > 0 divides n.
template <typename Row>
void for_each_softmax_row(int64_t n, int cols, Row row) {
  if (cols <= 0 || n % cols != 0) {
    throw std::invalid_argument("softmax activation: n is not a multiple of a positive cols");
  }
  const int64_t rows = n / cols;
#pragma omp parallel for schedule(static) if (n >= detail::kMinParallelElements)
  for (int64_t r = 0; r < rows; ++r) row(r);
}

}  // namespace

void activation_forward(Act act, int64_t n, int cols, const float* x, float* y) {
  switch (act) {
    case Act::linear:
      copy_if_distinct(n, x, y);
      return;
    case Act::relu:
#pragma omp parallel for simd schedule(static) if (n >= detail::kMinParallelElements)
      for (int64_t i = 0; i < n; ++i) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
      return;
    case Act::softmax:
      for_each_softmax_row(n, cols, [&](int64_t r) {
        const float* xr = x + r * cols;
        float* yr = y + r * cols;
        float mx = xr[0];
        for (int j = 1; j < cols; ++j) mx = xr[j] > mx ? xr[j] : mx;
        double sum = 0.0;
        for (int j = 0; j < cols; ++j) {
          const float e = std::exp(xr[j] - mx);
          yr[j] = e;
          sum += double(e);
        }
        const float inv = float(1.0 / sum);
        for (int j = 0; j < cols; ++j) yr[j] *= inv;
      });
      return;
  }
  throw std::invalid_argument("activation_forward: unknown activation");
}

void activation_backward(Act act, int64_t n, int cols, const float* y, const float* dy, float* dx) {
  switch (act) {
    case Act::linear:
      copy_if_distinct(n, dy, dx);
      return;
    case Act::relu:
#pragma omp parallel for simd schedule(static) if (n >= detail::kMinParallelElements)
      for (int64_t i = 0; i < n; ++i) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
      return;
    case Act::softmax:
      // dx_j = y_j * (dy_j - sum_k dy_k y_k); the dot is taken before dx (maybe dy) is written.
      for_each_softmax_row(n, cols, [&](int64_t r) {
        const float* yr = y + r * cols;
        const float* dyr = dy + r * cols;
        float* dxr = dx + r * cols;
        double dot = 0.0;
        for (int j = 0; j < cols; ++j) dot += double(dyr[j]) * double(yr[j]);
        const float d = float(dot);
        for (int j = 0; j < cols; ++j) dxr[j] = yr[j] * (dyr[j] - d);
      });
      return;
  }
  throw std::invalid_argument("activation_backward: unknown activation");
}

}  // namespace fer::kernels::cpu
