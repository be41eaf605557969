#include "kernels/cpu/pooling.h"

#include <cstdint>
#include <cstring>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "kernels/cpu/parallel.h"

namespace fer::kernels::cpu {
namespace {

// One output row (image i, output row oy) of pooling, all ow x c outputs.
void pool_row(const PoolShape& s, PoolMode mode, const float* x, float* y, int64_t i, int oy) {
  const int C = s.c;
  const float* img = x + i * s.h * s.w * C;
  float* yrow = y + (i * s.oh + oy) * s.ow * C;
  const float inv_area = 1.0f / float(s.ph * s.pw);
  for (int ox = 0; ox < s.ow; ++ox) {
    float* out = yrow + int64_t(ox) * C;
    const int iy0 = oy * s.stride_h, ix0 = ox * s.stride_w;
    const float* first = img + (int64_t(iy0) * s.w + ix0) * C;
    std::memcpy(out, first, sizeof(float) * size_t(C));
    for (int r = 0; r < s.ph; ++r) {
      for (int q = 0; q < s.pw; ++q) {
        if (r == 0 && q == 0) continue;
        const float* src = img + (int64_t(iy0 + r) * s.w + ix0 + q) * C;
        if (mode == PoolMode::max) {
#pragma omp simd
          for (int ch = 0; ch < C; ++ch) out[ch] = src[ch] > out[ch] ? src[ch] : out[ch];
        } else {
#pragma omp simd
          for (int ch = 0; ch < C; ++ch) out[ch] += src[ch];
        }
      }
    }
    if (mode == PoolMode::average) {
#pragma omp simd
      for (int ch = 0; ch < C; ++ch) out[ch] *= inv_area;
    }
  }
}

// Adds output row (i, oy)'s gradients into dx.
void unpool_row(const PoolShape& s, PoolMode mode, const float* x, const float* y, const float* dy,
                float* dx, int64_t i, int oy) {
  const int C = s.c;
  const int64_t img_off = i * s.h * s.w * C;
  const int64_t out_off = (i * s.oh + oy) * s.ow * C;
  const float inv_area = 1.0f / float(s.ph * s.pw);
  for (int ox = 0; ox < s.ow; ++ox) {
    const float* g = dy + out_off + int64_t(ox) * C;
    const int iy0 = oy * s.stride_h, ix0 = ox * s.stride_w;
    if (mode == PoolMode::average) {
      for (int r = 0; r < s.ph; ++r) {
        for (int q = 0; q < s.pw; ++q) {
          float* d = dx + img_off + (int64_t(iy0 + r) * s.w + ix0 + q) * C;
#pragma omp simd
          for (int ch = 0; ch < C; ++ch) d[ch] += g[ch] * inv_area;
        }
      }
      continue;
    }
    // Max: walk the window in row-major order; each channel takes the gradient at its first
    // element equal to the maximum, then stops (the `taken` flags), channels vectorised.
    const float* m = y + out_off + int64_t(ox) * C;
    constexpr int kChunk = 64;
    for (int c0 = 0; c0 < C; c0 += kChunk) {
      const int cn = C - c0 < kChunk ? C - c0 : kChunk;
      unsigned char taken[kChunk] = {};
      for (int r = 0; r < s.ph; ++r) {
        for (int q = 0; q < s.pw; ++q) {
          const int64_t at = img_off + (int64_t(iy0 + r) * s.w + ix0 + q) * C + c0;
          const float* xv = x + at;
          float* d = dx + at;
#pragma omp simd
          for (int j = 0; j < cn; ++j) {
            const bool hit = !taken[j] && xv[j] == m[c0 + j];
            d[j] += hit ? g[c0 + j] : 0.0f;
            taken[j] |= hit;
          }
        }
      }
    }
  }
}

// Windows that do not overlap (stride >= window in both directions): every input element lies in
// at most one window, so output row (i, oy) writes its input rows once, gradient or zero, with no
// zeroing pass and no read-modify-write of dx. It also zeroes the rows after its windows up to
// the next output row's (the gap rows, and for the last row the uncovered bottom rows).
void unpool_row_disjoint(const PoolShape& s, PoolMode mode, const float* x, const float* y,
                         const float* dy, float* dx, int64_t i, int oy) {
  const int C = s.c;
  const int64_t row = int64_t(s.w) * C;
  const int64_t img_off = i * s.h * row;
  const int64_t out_off = (i * s.oh + oy) * s.ow * C;
  const float inv_area = 1.0f / float(s.ph * s.pw);
  const int iy0 = oy * s.stride_h;
  for (int r = 0; r < s.ph; ++r) {
    // Columns after the windows of this row (gaps between windows and the uncovered right edge).
    float* drow = dx + img_off + int64_t(iy0 + r) * row;
    for (int ox = 0; ox < s.ow; ++ox) {
      const int gap0 = ox * s.stride_w + s.pw;
      const int gap1 = ox + 1 < s.ow ? (ox + 1) * s.stride_w : s.w;
      if (gap1 > gap0) std::memset(drow + int64_t(gap0) * C, 0, sizeof(float) * size_t(gap1 - gap0) * C);
    }
  }
  for (int ox = 0; ox < s.ow; ++ox) {
    const float* g = dy + out_off + int64_t(ox) * C;
    const int ix0 = ox * s.stride_w;
    if (mode == PoolMode::average) {
      for (int r = 0; r < s.ph; ++r) {
        for (int q = 0; q < s.pw; ++q) {
          float* d = dx + img_off + int64_t(iy0 + r) * row + int64_t(ix0 + q) * C;
#pragma omp simd
          for (int ch = 0; ch < C; ++ch) d[ch] = g[ch] * inv_area;
        }
      }
      continue;
    }
    // Max: the first element equal to the maximum in row-major window order takes the gradient.
    const float* m = y + out_off + int64_t(ox) * C;
    const float* xw = x + img_off + int64_t(iy0) * row + int64_t(ix0) * C;
    float* dw = dx + img_off + int64_t(iy0) * row + int64_t(ix0) * C;
#if defined(__AVX512F__)
    // 16 channels a register; `taken` is a lane mask, so the window walk is compare, and-not,
    // masked move, store.
    for (int c0 = 0; c0 < C; c0 += 16) {
      const __mmask16 lanes = C - c0 >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (C - c0)) - 1u);
      const __m512 mv = _mm512_maskz_loadu_ps(lanes, m + c0);
      const __m512 gv = _mm512_maskz_loadu_ps(lanes, g + c0);
      __mmask16 taken = 0;
      for (int r = 0; r < s.ph; ++r) {
        for (int q = 0; q < s.pw; ++q) {
          const int64_t at = int64_t(r) * row + int64_t(q) * C + c0;
          const __m512 xv = _mm512_maskz_loadu_ps(lanes, xw + at);
          const __mmask16 hit = _mm512_mask_cmp_ps_mask(lanes & ~taken, xv, mv, _CMP_EQ_OQ);
          _mm512_mask_storeu_ps(dw + at, lanes, _mm512_maskz_mov_ps(hit, gv));
          taken |= hit;
        }
      }
    }
#else
    constexpr int kChunk = 16;
    for (int c0 = 0; c0 < C; c0 += kChunk) {
      const int cn = C - c0 < kChunk ? C - c0 : kChunk;
      int taken[kChunk] = {};
      for (int r = 0; r < s.ph; ++r) {
        for (int q = 0; q < s.pw; ++q) {
          const int64_t at = int64_t(r) * row + int64_t(q) * C + c0;
          const float* xv = xw + at;
          float* d = dw + at;
#pragma omp simd
          for (int j = 0; j < cn; ++j) {
            const bool hit = !taken[j] && xv[j] == m[c0 + j];
            d[j] = hit ? g[c0 + j] : 0.0f;
            taken[j] |= hit;
          }
        }
      }
    }
#endif
  }
  // Rows below this output row's windows and above the next one's (or the image's end).
  const int rows0 = iy0 + s.ph;
  const int rows1 = oy + 1 < s.oh ? (oy + 1) * s.stride_h : s.h;
  if (rows1 > rows0) {
    std::memset(dx + img_off + int64_t(rows0) * row, 0, sizeof(float) * size_t(rows1 - rows0) * size_t(row));
  }
}

}  // namespace

void pool2d_forward(const PoolShape& s, PoolMode mode, const float* x, float* y) {
  const int64_t rows = int64_t(s.n) * s.oh;
#pragma omp parallel for schedule(static) if (s.x_size() >= detail::kMinParallelElements)
  for (int64_t t = 0; t < rows; ++t) pool_row(s, mode, x, y, t / s.oh, int(t % s.oh));
}

void pool2d_backward(const PoolShape& s, PoolMode mode, const float* x, const float* y,
                     const float* dy, float* dx) {
  const int64_t image = int64_t(s.h) * s.w * s.c;
  if (s.stride_h >= s.ph && s.stride_w >= s.pw && s.oh > 0 && s.ow > 0) {
    // Disjoint windows: one write per dx element, no zeroing pass (every output row is a task).
    const int64_t rows = int64_t(s.n) * s.oh;
#pragma omp parallel for schedule(static) if (s.x_size() >= detail::kMinParallelElements)
    for (int64_t t = 0; t < rows; ++t) {
      unpool_row_disjoint(s, mode, x, y, dy, dx, t / s.oh, int(t % s.oh));
    }
    return;
  }
#pragma omp parallel for schedule(static) if (s.x_size() >= detail::kMinParallelElements)
  for (int64_t i = 0; i < s.n; ++i) std::memset(dx + i * image, 0, sizeof(float) * size_t(image));
  if (s.stride_h >= s.ph) {
    // Windows of different output rows touch different input rows: every output row is a task.
    const int64_t rows = int64_t(s.n) * s.oh;
#pragma omp parallel for schedule(static) if (s.x_size() >= detail::kMinParallelElements)
    for (int64_t t = 0; t < rows; ++t) unpool_row(s, mode, x, y, dy, dx, t / s.oh, int(t % s.oh));
  } else {
    // Overlapping rows: one task per image, its rows in order.
#pragma omp parallel for schedule(static) if (s.x_size() >= detail::kMinParallelElements)
    for (int64_t i = 0; i < s.n; ++i) {
      for (int oy = 0; oy < s.oh; ++oy) unpool_row(s, mode, x, y, dy, dx, i, oy);
    }
  }
}

}  // namespace fer::kernels::cpu
