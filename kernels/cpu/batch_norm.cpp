#include "kernels/cpu/batch_norm.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "kernels/cpu/parallel.h"

namespace fer::kernels::cpu {
namespace {

// Per-channel coefficients of the element-wise passes, owned by the calling thread and reused.
struct ChannelScratch {
  std::vector<double> sums;  // reduction results
  std::vector<float> a, b, c;
  void ensure(int channels) {
    if (sums.size() < size_t(2) * size_t(channels)) sums.resize(size_t(2) * size_t(channels));
    if (a.size() < size_t(channels)) {
      a.resize(size_t(channels));
      b.resize(size_t(channels));
      c.resize(size_t(channels));
    }
  }
};

ChannelScratch& channel_scratch(int channels) {
  static thread_local ChannelScratch scratch;
  scratch.ensure(channels);
  return scratch;
}

// Narrow maps (C <= kTile, e.g. 32 or 64 channels after a convolution) are reduced with the
// whole row's double accumulators in registers, added to memory once per sub-block of rows.
// (Accumulating row after row into a double array in memory chains every row's add behind the
// previous row's store when a row has only a few accumulator vectors: about 2 cycles per
// element, 2-3x slower than the memory traffic allows.)
#if defined(__AVX512F__)
constexpr int kTile = 64;  // 4 x 16 floats: 16 double accumulators of 8 lanes
#else
constexpr int kTile = 0;  // portable build: always the row-by-row loop
#endif

// Rows per sub-block (how often the register accumulators are flushed).
inline int64_t sub_block_rows(int channels) {
  const int64_t rows = (int64_t(64) * 1024) / (channels > 0 ? channels : 1);
  return rows < 64 ? 64 : rows;
}

// out[0 .. sums*C) = per-channel sums over all rows, in double with per-thread partials.
// tile(r0, r1, acc) adds rows [r0, r1) to acc[k * C + ch] for each of its `sums` sums k.
template <class Tile>
void channel_reduce(const BatchNormShape& s, int sums, double* out, Tile tile) {
  const int threads = omp_get_max_threads();
  const int C = s.channels;
  const size_t stride = size_t(sums) * size_t(C);
  double* partial = detail::scratch_doubles(size_t(threads) * stride);
  for (size_t i = 0; i < size_t(threads) * stride; ++i) partial[i] = 0.0;
  const int64_t block = detail::reduction_row_block(s.rows);
  const int64_t blocks = s.rows == 0 ? 0 : (s.rows + block - 1) / block;
  const int64_t sub = sub_block_rows(C);
#pragma omp parallel num_threads(threads) if (s.rows * s.channels >= detail::kMinParallelElements)
  {
    double* acc = partial + size_t(omp_get_thread_num()) * stride;
#pragma omp for schedule(static)
    for (int64_t bi = 0; bi < blocks; ++bi) {
      const int64_t end = (bi + 1) * block < s.rows ? (bi + 1) * block : s.rows;
      for (int64_t r0 = bi * block; r0 < end; r0 += sub) {
        const int64_t r1 = r0 + sub < end ? r0 + sub : end;
        tile(r0, r1, acc);
      }
    }
  }
  for (size_t j = 0; j < stride; ++j) {
    double total = 0.0;
    for (int t = 0; t < threads; ++t) total += partial[size_t(t) * stride + j];
    out[j] = total;
  }
}

// Over rows [r0, r1), in double, for channels j in [c0, c0 + cw):
//   statistics (kProduct false): u = a[r, j] - ca[j];  acc[j] += sum u, acc[C + j] += sum u * u
//   gradients  (kProduct true):  u = a[r, j];          acc[j] += sum u,
//                                                      acc[C + j] += sum u * (b[r, j] - cb[j])
#if defined(__AVX512F__)
// GCC 12 flags the intrinsics' own "undefined" pass-through operands as maybe-uninitialized.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// G groups of 16 channels in registers: 4G accumulators (sum and second sum, two halves each).
template <int G, bool kProduct>
inline void tile_sums_avx512(const float* a, const float* ca, const float* b, const float* cb,
                             int C, int64_t r0, int64_t r1, int c0, double* acc) {
  __m512d s1[2 * G], s2[2 * G];
  for (int i = 0; i < 2 * G; ++i) s1[i] = s2[i] = _mm512_setzero_pd();
  for (int64_t r = r0; r < r1; ++r) {
    const float* ar = a + r * C + c0;
    const float* br = kProduct ? b + r * C + c0 : nullptr;
    for (int g = 0; g < G; ++g) {
      const __m512 va = _mm512_loadu_ps(ar + 16 * g);
      __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(va));
      __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(va), 1)));
      if (!kProduct) {
        lo = _mm512_sub_pd(lo, _mm512_cvtps_pd(_mm256_loadu_ps(ca + c0 + 16 * g)));
        hi = _mm512_sub_pd(hi, _mm512_cvtps_pd(_mm256_loadu_ps(ca + c0 + 16 * g + 8)));
      }
      s1[2 * g] = _mm512_add_pd(s1[2 * g], lo);
      s1[2 * g + 1] = _mm512_add_pd(s1[2 * g + 1], hi);
      if (kProduct) {
        const __m512 vb = _mm512_loadu_ps(br + 16 * g);
        const __m512d blo = _mm512_sub_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(vb)),
                                          _mm512_cvtps_pd(_mm256_loadu_ps(cb + c0 + 16 * g)));
        const __m512d bhi = _mm512_sub_pd(
            _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(vb), 1))),
            _mm512_cvtps_pd(_mm256_loadu_ps(cb + c0 + 16 * g + 8)));
        s2[2 * g] = _mm512_fmadd_pd(lo, blo, s2[2 * g]);
        s2[2 * g + 1] = _mm512_fmadd_pd(hi, bhi, s2[2 * g + 1]);
      } else {
        s2[2 * g] = _mm512_fmadd_pd(lo, lo, s2[2 * g]);
        s2[2 * g + 1] = _mm512_fmadd_pd(hi, hi, s2[2 * g + 1]);
      }
    }
  }
  for (int i = 0; i < 2 * G; ++i) {
    double* p1 = acc + c0 + 8 * i;
    double* p2 = acc + C + c0 + 8 * i;
    _mm512_storeu_pd(p1, _mm512_add_pd(_mm512_loadu_pd(p1), s1[i]));
    _mm512_storeu_pd(p2, _mm512_add_pd(_mm512_loadu_pd(p2), s2[i]));
  }
}
#pragma GCC diagnostic pop
#endif

// Rows [r0, r1) of all C channels. Up to kTile channels: the whole row in register tiles. More
// channels: row by row into acc in memory, where each row has C/8 independent accumulator
// vectors, enough to hide the store-to-load latency, and the rows are read in order.
template <bool kProduct>
inline void sums_tile(const float* a, const float* ca, const float* b, const float* cb, int C,
                      int64_t r0, int64_t r1, int c0, int cw, double* acc);

template <bool kProduct>
inline void sums_rows(const float* a, const float* ca, const float* b, const float* cb, int C,
                      int64_t r0, int64_t r1, double* acc) {
  if (C <= kTile) {
    sums_tile<kProduct>(a, ca, b, cb, C, r0, r1, 0, C, acc);
    return;
  }
  for (int64_t r = r0; r < r1; ++r) {
    const float* ar = a + r * C;
    const float* br = kProduct ? b + r * C : nullptr;
    double* acc2 = acc + C;
#pragma omp simd
    for (int ch = 0; ch < C; ++ch) {
      const double u = kProduct ? double(ar[ch]) : double(ar[ch]) - double(ca[ch]);
      acc[ch] += u;
      acc2[ch] += u * (kProduct ? double(br[ch]) - double(cb[ch]) : u);
    }
  }
}

template <bool kProduct>
inline void sums_tile(const float* a, const float* ca, const float* b, const float* cb, int C,
                      int64_t r0, int64_t r1, int c0, int cw, double* acc) {
#if defined(__AVX512F__)
  // Full groups of 16 in registers, the rest (cw % 16 channels) below.
  const int groups = cw / 16;
  switch (groups) {
    case 4: tile_sums_avx512<4, kProduct>(a, ca, b, cb, C, r0, r1, c0, acc); break;
    case 3: tile_sums_avx512<3, kProduct>(a, ca, b, cb, C, r0, r1, c0, acc); break;
    case 2: tile_sums_avx512<2, kProduct>(a, ca, b, cb, C, r0, r1, c0, acc); break;
    case 1: tile_sums_avx512<1, kProduct>(a, ca, b, cb, C, r0, r1, c0, acc); break;
    default: break;
  }
  c0 += 16 * groups;
  cw -= 16 * groups;
  if (cw == 0) return;
#endif
  for (int64_t r = r0; r < r1; ++r) {
    const float* ar = a + r * C + c0;
    const float* br = kProduct ? b + r * C + c0 : nullptr;
#pragma omp simd
    for (int j = 0; j < cw; ++j) {
      const double u = kProduct ? double(ar[j]) : double(ar[j]) - double(ca[c0 + j]);
      acc[c0 + j] += u;
      acc[C + c0 + j] += u * (kProduct ? double(br[j]) - double(cb[c0 + j]) : u);
    }
  }
}

// y[i, ch] = (x[i, ch] - mean[ch]) * scale[ch] + shift[ch].
void normalize(const BatchNormShape& s, const float* x, const float* mean, const float* scale,
               const float* shift, float* y) {
  const int C = s.channels;
#pragma omp parallel for schedule(static) if (s.rows * s.channels >= detail::kMinParallelElements)
  for (int64_t i = 0; i < s.rows; ++i) {
    const float* xr = x + i * C;
    float* yr = y + i * C;
#pragma omp simd
    for (int ch = 0; ch < C; ++ch) yr[ch] = (xr[ch] - mean[ch]) * scale[ch] + shift[ch];
  }
}

}  // namespace

void batchnorm_forward_train(const BatchNormShape& s, const float* x, const float* gamma,
                             const float* beta, float* y, float* save_mean, float* save_invstd,
                             float* moving_mean, float* moving_var, float momentum, float epsilon) {
  const int C = s.channels;
  const double rows = double(s.rows);
  ChannelScratch& sc = channel_scratch(C);
  double* sum = sc.sums.data();
  double* sq = sc.sums.data() + C;

  // One pass over x: sums of (x - shift) and (x - shift)^2 in double, shifted by the first row
  // so that a large mean does not cancel the variance away.
  float* shift = sc.c.data();
  for (int ch = 0; ch < C; ++ch) shift[ch] = s.rows > 0 ? x[ch] : 0.0f;
  channel_reduce(s, 2, sum, [&](int64_t r0, int64_t r1, double* acc) {
    sums_rows<false>(x, shift, nullptr, nullptr, C, r0, r1, acc);
  });
  // sum[] becomes the mean and sq[] the sum of squared deviations from it.
  for (int ch = 0; ch < C; ++ch) {
    const double s1 = sum[ch], s2 = sq[ch];
    sum[ch] = rows > 0 ? double(shift[ch]) + s1 / rows : 0.0;
    sq[ch] = rows > 0 ? std::max(0.0, s2 - s1 * s1 / rows) : 0.0;
  }
  const double* mu = sum;

  const double mom = double(momentum);
  for (int ch = 0; ch < C; ++ch) {
    const double var = rows > 0 ? sq[ch] / rows : 0.0;
    const double invstd = 1.0 / std::sqrt(var + double(epsilon));
    const double unbiased = s.rows > 1 ? sq[ch] / (rows - 1.0) : var;
    save_mean[ch] = float(mu[ch]);
    save_invstd[ch] = float(invstd);
    sc.a[size_t(ch)] = float(mu[ch]);
    sc.b[size_t(ch)] = float(double(gamma[ch]) * invstd);
    moving_mean[ch] = float(mom * double(moving_mean[ch]) + (1.0 - mom) * mu[ch]);
    moving_var[ch] = float(mom * double(moving_var[ch]) + (1.0 - mom) * unbiased);
  }
  normalize(s, x, sc.a.data(), sc.b.data(), beta, y);
}

void batchnorm_forward_infer(const BatchNormShape& s, const float* x, const float* gamma,
                             const float* beta, const float* moving_mean, const float* moving_var,
                             float* y, float epsilon) {
  const int C = s.channels;
  ChannelScratch& sc = channel_scratch(C);
  for (int ch = 0; ch < C; ++ch) {
    sc.b[size_t(ch)] =
        float(double(gamma[ch]) / std::sqrt(double(moving_var[ch]) + double(epsilon)));
  }
  normalize(s, x, moving_mean, sc.b.data(), beta, y);
}

void batchnorm_backward(const BatchNormShape& s, const float* x, const float* gamma,
                        const float* dy, const float* save_mean, const float* save_invstd,
                        float* dx, float* dgamma, float* dbeta) {
  const int C = s.channels;
  ChannelScratch& sc = channel_scratch(C);
  double* sums = sc.sums.data();  // [0, C): sum dy ; [C, 2C): sum dy * (x - mean)
  channel_reduce(s, 2, sums, [&](int64_t r0, int64_t r1, double* acc) {
    sums_rows<true>(dy, nullptr, x, save_mean, C, r0, r1, acc);
  });
  const double rows = double(s.rows);
  // dx = gamma*invstd * (dy - dbeta/N - (x - mean) * invstd * dgamma / N)
  for (int ch = 0; ch < C; ++ch) {
    const double invstd = double(save_invstd[ch]);
    const double db = sums[ch];
    const double dg = sums[C + ch] * invstd;
    dbeta[ch] = float(db);
    dgamma[ch] = float(dg);
    sc.a[size_t(ch)] = float(double(gamma[ch]) * invstd);
    sc.b[size_t(ch)] = rows > 0 ? float(db / rows) : 0.0f;
    sc.c[size_t(ch)] = rows > 0 ? float(dg * invstd / rows) : 0.0f;
  }
  batchnorm_backward_apply(s, x, dy, save_mean, sc.a.data(), sc.b.data(), sc.c.data(), dx);
}

void batchnorm_sums(const BatchNormShape& s, const float* x, const float* shift, double* sums) {
  channel_reduce(s, 2, sums, [&](int64_t r0, int64_t r1, double* acc) {
    sums_rows<false>(x, shift, nullptr, nullptr, s.channels, r0, r1, acc);
  });
}

void batchnorm_backward_sums(const BatchNormShape& s, const float* x, const float* dy, const float* mean,
                             double* sums) {
  channel_reduce(s, 2, sums, [&](int64_t r0, int64_t r1, double* acc) {
    sums_rows<true>(dy, nullptr, x, mean, s.channels, r0, r1, acc);
  });
}

void batchnorm_backward_apply(const BatchNormShape& s, const float* x, const float* dy, const float* mean,
                              const float* k, const float* mean_dy, const float* mean_dyxhat_invstd, float* dx) {
  const int C = s.channels;
#pragma omp parallel for schedule(static) if (s.rows * s.channels >= detail::kMinParallelElements)
  for (int64_t i = 0; i < s.rows; ++i) {
    const float* xr = x + i * C;
    const float* dyr = dy + i * C;
    float* dxr = dx + i * C;
#pragma omp simd
    for (int ch = 0; ch < C; ++ch) {
      dxr[ch] = k[ch] * (dyr[ch] - mean_dy[ch] - (xr[ch] - mean[ch]) * mean_dyxhat_invstd[ch]);
    }
  }
}

}  // namespace fer::kernels::cpu
