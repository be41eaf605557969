#include "kernels/cpu/batch_norm.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

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

// out[0 .. sums*C) = per-channel sums over all rows, in double with per-thread partials.
// body(row, acc) adds that row's contribution to acc[0 .. sums*C).
template <class Body>
void channel_reduce(const BatchNormShape& s, int sums, double* out, Body body) {
  const int threads = omp_get_max_threads();
  const size_t stride = size_t(sums) * size_t(s.channels);
  double* partial = detail::scratch_doubles(size_t(threads) * stride);
  for (size_t i = 0; i < size_t(threads) * stride; ++i) partial[i] = 0.0;
  const int64_t block = detail::reduction_row_block(s.rows);
  const int64_t blocks = s.rows == 0 ? 0 : (s.rows + block - 1) / block;
#pragma omp parallel num_threads(threads) if (s.rows * s.channels >= detail::kMinParallelElements)
  {
    double* acc = partial + size_t(omp_get_thread_num()) * stride;
#pragma omp for schedule(static)
    for (int64_t bi = 0; bi < blocks; ++bi) {
      const int64_t end = (bi + 1) * block < s.rows ? (bi + 1) * block : s.rows;
      for (int64_t i = bi * block; i < end; ++i) body(i, acc);
    }
  }
  for (size_t j = 0; j < stride; ++j) {
    double total = 0.0;
    for (int t = 0; t < threads; ++t) total += partial[size_t(t) * stride + j];
    out[j] = total;
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
  channel_reduce(s, 2, sum, [&](int64_t i, double* acc) {
    const float* xr = x + i * C;
    double* acc2 = acc + C;
#pragma omp simd
    for (int ch = 0; ch < C; ++ch) {
      const double d = double(xr[ch]) - double(shift[ch]);
      acc[ch] += d;
      acc2[ch] += d * d;
    }
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
  channel_reduce(s, 2, sums, [&](int64_t i, double* acc) {
    const float* xr = x + i * C;
    const float* dyr = dy + i * C;
    double* acc_dy = acc;
    double* acc_dyx = acc + C;
#pragma omp simd
    for (int ch = 0; ch < C; ++ch) {
      const double g = double(dyr[ch]);
      acc_dy[ch] += g;
      acc_dyx[ch] += g * (double(xr[ch]) - double(save_mean[ch]));
    }
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
  const float* k = sc.a.data();
  const float* mdb = sc.b.data();
  const float* mdg = sc.c.data();
#pragma omp parallel for schedule(static) if (s.rows * s.channels >= detail::kMinParallelElements)
  for (int64_t i = 0; i < s.rows; ++i) {
    const float* xr = x + i * C;
    const float* dyr = dy + i * C;
    float* dxr = dx + i * C;
#pragma omp simd
    for (int ch = 0; ch < C; ++ch) {
      dxr[ch] = k[ch] * (dyr[ch] - mdb[ch] - (xr[ch] - save_mean[ch]) * mdg[ch]);
    }
  }
}

}  // namespace fer::kernels::cpu
