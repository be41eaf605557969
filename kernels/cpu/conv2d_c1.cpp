#include "kernels/cpu/conv2d_c1.h"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "kernels/cpu/parallel.h"

namespace fer::kernels::cpu::c1 {

#if defined(__AVX512F__)
namespace {

// GCC 12 flags the intrinsics' own "undefined" pass-through operands as maybe-uninitialized.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// The KH input rows under output row oy of image img, zero-padded to `span` columns: column j
// holds x[iy, j - pad_left] (0 outside the image).
void gather_rows(const ConvShape& s, const float* x, int64_t img, int oy, int kh, int span,
                 float* rows) {
  const float* image = x + img * s.h * s.w;
  for (int r = 0; r < kh; ++r) {
    float* dst = rows + int64_t(r) * span;
    const int iy = oy * s.stride_h - s.pad_top + r;
    if (iy < 0 || iy >= s.h) {
      std::memset(dst, 0, sizeof(float) * size_t(span));
      continue;
    }
    const float* src = image + int64_t(iy) * s.w;
    for (int j = 0; j < span; ++j) {
      const int ix = j - s.pad_left;
      dst[j] = ix >= 0 && ix < s.w ? src[ix] : 0.0f;
    }
  }
}

// acc[t * K + k] += v[k] (16 lanes from v16, masked to `lanes`), in double.
inline void flush(__m512 v16, __mmask16 lanes, double* acc) {
  alignas(64) float tmp[16];
  _mm512_store_ps(tmp, v16);
  const __m512d lo = _mm512_cvtps_pd(_mm256_load_ps(tmp));
  const __m512d hi = _mm512_cvtps_pd(_mm256_load_ps(tmp + 8));
  const __mmask8 mlo = __mmask8(lanes & 0xFF), mhi = __mmask8(lanes >> 8);
  _mm512_mask_storeu_pd(acc, mlo, _mm512_add_pd(_mm512_maskz_loadu_pd(mlo, acc), lo));
  _mm512_mask_storeu_pd(acc + 8, mhi, _mm512_add_pd(_mm512_maskz_loadu_pd(mhi, acc + 8), hi));
}

// Lanes of 16-filter slice `chunk` that exist (K need not be a multiple of 16).
inline __mmask16 slice_lanes(int K, int k0) {
  return K - k0 >= 16 ? __mmask16(0xFFFF) : K - k0 <= 0 ? __mmask16(0) : __mmask16((1u << (K - k0)) - 1u);
}

// dW and db over output rows [row0, row1): for each tap row r and each group of CH 16-filter
// slices, KW * CH register accumulators (plus CH for the bias on the first tap row) while the
// output row's dy streams past in order; each broadcast input value feeds CH FMAs. The row's dy
// (a few KiB) is read KH times from L1.
template <int KH, int KW, int CH>
void weight_grad_rows(const ConvShape& s, const float* x, const float* dy, int64_t row0,
                      int64_t row1, int span, float* xrows, double* acc_d) {
  constexpr int T = KH * KW;
  const int K = s.k;
  for (int64_t row = row0; row < row1; ++row) {
    const int64_t img = row / s.oh;
    const int oy = int(row % s.oh);
    gather_rows(s, x, img, oy, KH, span, xrows);
    const float* dyr = dy + row * s.ow * K;
    for (int k0 = 0; k0 < K; k0 += 16 * CH) {
      __mmask16 lanes[CH];
      for (int c = 0; c < CH; ++c) lanes[c] = slice_lanes(K, k0 + 16 * c);
      for (int r = 0; r < KH; ++r) {
        __m512 acc[KW][CH], accb[CH];
        for (int c = 0; c < CH; ++c) {
          accb[c] = _mm512_setzero_ps();
          for (int q = 0; q < KW; ++q) acc[q][c] = _mm512_setzero_ps();
        }
        const float* xr = xrows + int64_t(r) * span;
        for (int ox = 0; ox < s.ow; ++ox) {
          __m512 g[CH];
          for (int c = 0; c < CH; ++c) {
            g[c] = _mm512_maskz_loadu_ps(lanes[c], dyr + int64_t(ox) * K + k0 + 16 * c);
          }
          if (r == 0) {
            for (int c = 0; c < CH; ++c) accb[c] = _mm512_add_ps(accb[c], g[c]);
          }
          const float* xp = xr + int64_t(ox) * s.stride_w;
          for (int q = 0; q < KW; ++q) {
            const __m512 xv = _mm512_set1_ps(xp[q]);
            for (int c = 0; c < CH; ++c) acc[q][c] = _mm512_fmadd_ps(xv, g[c], acc[q][c]);
          }
        }
        for (int c = 0; c < CH; ++c) {
          if (!lanes[c]) continue;
          for (int q = 0; q < KW; ++q) {
            flush(acc[q][c], lanes[c], acc_d + int64_t(r * KW + q) * K + k0 + 16 * c);
          }
          if (r == 0) flush(accb[c], lanes[c], acc_d + int64_t(T) * K + k0 + 16 * c);
        }
      }
    }
  }
}

// dW and db: rows split over the team, per-thread double partials summed at the end.
template <int KH, int KW>
void weight_grads(const ConvShape& s, const float* x, const float* dy, float* dw, float* db) {
  constexpr int T = KH * KW;
  const int K = s.k;
  const int threads = omp_get_max_threads();
  const int64_t rows = int64_t(s.n) * s.oh;
  const size_t per = size_t(T + 1) * size_t(K);  // [T taps][K] then [K] bias, per thread
  double* partial = detail::scratch_doubles(size_t(threads) * per);
  std::memset(partial, 0, sizeof(double) * size_t(threads) * per);
  const int span = (s.ow - 1) * s.stride_w + KW;  // input columns the windows of a row cover
  const int slices = (K + 15) / 16;
  const bool parallel = rows * s.ow * K * T >= detail::kMinParallelElements;
#pragma omp parallel num_threads(threads) if (parallel)
  {
    double* acc_d = partial + size_t(omp_get_thread_num()) * per;
    static thread_local std::vector<float> xrows;  // kept between calls: no allocation per step
    if (xrows.size() < size_t(KH) * size_t(span)) xrows.resize(size_t(KH) * size_t(span));
    const int t = omp_get_thread_num(), team = omp_get_num_threads();
    const int64_t per_thread = (rows + team - 1) / team;
    const int64_t r0 = std::min(rows, per_thread * t), r1 = std::min(rows, r0 + per_thread);
    switch (slices >= 4 ? 4 : slices) {
      case 4: weight_grad_rows<KH, KW, 4>(s, x, dy, r0, r1, span, xrows.data(), acc_d); break;
      case 3: weight_grad_rows<KH, KW, 3>(s, x, dy, r0, r1, span, xrows.data(), acc_d); break;
      case 2: weight_grad_rows<KH, KW, 2>(s, x, dy, r0, r1, span, xrows.data(), acc_d); break;
      default: weight_grad_rows<KH, KW, 1>(s, x, dy, r0, r1, span, xrows.data(), acc_d); break;
    }
  }
  // dw is OHWI with one channel: dw[k * T + t].
  for (int k = 0; k < K; ++k) {
    for (int t = 0; t < T; ++t) {
      double sum = 0.0;
      for (int u = 0; u < threads; ++u) sum += partial[size_t(u) * per + size_t(t) * K + k];
      dw[int64_t(k) * T + t] = float(sum);
    }
    if (db) {
      double sum = 0.0;
      for (int u = 0; u < threads; ++u) sum += partial[size_t(u) * per + size_t(T) * K + k];
      db[k] = float(sum);
    }
  }
}

// dx[iy, ix] = sum over the windows that cover it of dy[oy, ox, :] . w[:, tap]: per output pixel
// and tap a K-long dot product, added into dx. One task per image (windows overlap across rows).
template <int KH, int KW>
void input_grads(const ConvShape& s, const float* w, const float* dy, float* dx) {
  constexpr int T = KH * KW;
  const int K = s.k;
  const int kp = (K + 15) / 16 * 16;
  // [tap][filter], zero-padded to 16s; the calling thread's buffer, read by the whole team.
  static thread_local std::vector<float> wt_buffer;
  wt_buffer.assign(size_t(T) * size_t(kp), 0.0f);
  for (int k = 0; k < K; ++k) {
    for (int t = 0; t < T; ++t) wt_buffer[size_t(t) * kp + k] = w[int64_t(k) * T + t];
  }
  const float* wt = wt_buffer.data();
  const int64_t image = int64_t(s.h) * s.w;
#pragma omp parallel for schedule(static) if (s.y_size() * T >= detail::kMinParallelElements)
  for (int64_t img = 0; img < s.n; ++img) {
    float* d = dx + img * image;
    std::memset(d, 0, sizeof(float) * size_t(image));
    for (int oy = 0; oy < s.oh; ++oy) {
      for (int ox = 0; ox < s.ow; ++ox) {
        const float* g = dy + ((img * s.oh + oy) * s.ow + ox) * K;
        for (int r = 0; r < KH; ++r) {
          const int iy = oy * s.stride_h - s.pad_top + r;
          if (iy < 0 || iy >= s.h) continue;
          for (int q = 0; q < KW; ++q) {
            const int ix = ox * s.stride_w - s.pad_left + q;
            if (ix < 0 || ix >= s.w) continue;
            const float* wv = wt + size_t(r * KW + q) * kp;
            __m512 sum = _mm512_setzero_ps();
            for (int k0 = 0; k0 < K; k0 += 16) {
              const __mmask16 lanes =
                  K - k0 >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (K - k0)) - 1u);
              sum = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(lanes, g + k0),
                                    _mm512_loadu_ps(wv + k0), sum);
            }
            d[int64_t(iy) * s.w + ix] += _mm512_reduce_add_ps(sum);
          }
        }
      }
    }
  }
}

#pragma GCC diagnostic pop

}  // namespace

bool supported(const ConvShape& s) {
  return s.c == 1 && s.n > 0 && s.oh > 0 && s.ow > 0 && s.k > 0 &&
         ((s.kh == 3 && s.kw == 3) || (s.kh == 5 && s.kw == 5));
}

void backward(const ConvShape& s, const float* x, const float* w, const float* dy, float* dx,
              float* dw, float* db) {
  if (!supported(s)) throw std::logic_error("conv2d c1::backward called on an unsupported shape");
  if (s.kh == 3) {
    weight_grads<3, 3>(s, x, dy, dw, db);
    if (dx) input_grads<3, 3>(s, w, dy, dx);
  } else {
    weight_grads<5, 5>(s, x, dy, dw, db);
    if (dx) input_grads<5, 5>(s, w, dy, dx);
  }
}

#else  // no AVX-512: the general paths take every shape

bool supported(const ConvShape&) { return false; }
void backward(const ConvShape&, const float*, const float*, const float*, float*, float*, float*) {
  throw std::logic_error("conv2d c1::backward needs AVX-512");
}

#endif

}  // namespace fer::kernels::cpu::c1
