#pragma once
// Shared helpers for op tests (CPU oracle tests here, CUDA parity tests in tests/gpu): seeded
// random data, relative L2 error, TensorFlow-style shape helpers and a central-difference
// gradient check driver. Header-only plain C++ (no GoogleTest dependency).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/common/shapes.h"

namespace fer::testing {

// ------------------------------------------------------------------ random data
// n uniforms in [lo, hi) from a seeded generator: the same seed gives the same data everywhere.
inline std::vector<float> random_floats(size_t n, uint64_t seed, float lo = -1.0f,
                                        float hi = 1.0f) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = float(dist(gen));
  return v;
}

// n uniforms whose magnitude is at least `gap` (for kinks such as ReLU at 0): values in
// [-hi, -gap] U [gap, hi].
inline std::vector<float> random_floats_away_from_zero(size_t n, uint64_t seed, float gap,
                                                       float hi = 1.0f) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> mag(gap, hi);
  std::bernoulli_distribution sign(0.5);
  std::vector<float> v(n);
  for (float& x : v) x = float(sign(gen) ? mag(gen) : -mag(gen));
  return v;
}

// A random permutation of {0, spacing, 2*spacing, ...} shifted by `offset`: all values distinct
// and at least `spacing` apart, so max pooling has no ties even under a perturbation < spacing/2.
inline std::vector<float> distinct_floats(size_t n, uint64_t seed, float spacing = 1.0f / 64,
                                          float offset = -1.0f) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = offset + spacing * float(i);
  std::mt19937_64 gen(seed);
  std::shuffle(v.begin(), v.end(), gen);
  return v;
}

inline std::vector<int32_t> random_labels(size_t n, int classes, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::uniform_int_distribution<int32_t> dist(0, classes - 1);
  std::vector<int32_t> v(n);
  for (int32_t& x : v) x = dist(gen);
  return v;
}

inline std::vector<double> to_double(const std::vector<float>& v) {
  return std::vector<double>(v.begin(), v.end());
}
inline std::vector<float> to_float(const std::vector<double>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = float(v[i]);
  return out;
}

// ------------------------------------------------------------------ errors
// ||got - want||_2 / ||want||_2 computed in double; when want is all zeros, the absolute norm
// ||got||_2 is returned instead (so zero-vs-zero is 0 and anything else is visible).
template <class A, class B>
double rel_l2_error(const A* got, const B* want, size_t n) {
  double diff = 0.0, ref = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const double d = double(got[i]) - double(want[i]);
    diff += d * d;
    ref += double(want[i]) * double(want[i]);
  }
  if (std::isnan(diff)) return INFINITY;
  return ref > 0.0 ? std::sqrt(diff / ref) : std::sqrt(diff);
}
template <class A, class B>
double rel_l2_error(const std::vector<A>& got, const std::vector<B>& want) {
  if (got.size() != want.size()) return INFINITY;
  return rel_l2_error(got.data(), want.data(), got.size());
}

inline double max_abs_diff(const float* a, const float* b, size_t n) {
  double m = 0.0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(double(a[i]) - double(b[i])));
  return m;
}

// sum_i y[i] * r[i] in double: the scalar "loss" whose gradient w.r.t. y is r, used to turn an
// op's backward (with dy = r) into a gradient check.
template <class T>
double dot(const T* y, const double* r, size_t n) {
  double s = 0.0;
  for (size_t i = 0; i < n; ++i) s += double(y[i]) * r[i];
  return s;
}

// ------------------------------------------------------------------ shapes (TensorFlow rules)
enum class Padding { valid, same };

// Output size and leading padding of TensorFlow's "valid"/"same" for one spatial dimension.
inline void tf_padding(int in, int kernel, int stride, Padding p, int* out, int* pad_lead) {
  if (p == Padding::valid) {
    *out = (in - kernel) / stride + 1;
    *pad_lead = 0;
  } else {
    *out = (in + stride - 1) / stride;
    const int total = std::max((*out - 1) * stride + kernel - in, 0);
    *pad_lead = total / 2;  // the odd row/column goes to the bottom/right
  }
}

inline kernels::ConvShape conv_shape(int n, int h, int w, int c, int k, int kh, int kw,
                                     int stride_h, int stride_w, Padding p) {
  kernels::ConvShape s;  // (plain assignments: this header also builds as C++17 for CUDA tests)
  s.n = n, s.h = h, s.w = w, s.c = c, s.k = k, s.kh = kh, s.kw = kw;
  s.stride_h = stride_h, s.stride_w = stride_w;
  tf_padding(h, kh, stride_h, p, &s.oh, &s.pad_top);
  tf_padding(w, kw, stride_w, p, &s.ow, &s.pad_left);
  return s;
}

inline kernels::PoolShape pool_shape(int n, int h, int w, int c, int ph, int pw, int stride_h,
                                     int stride_w) {
  kernels::PoolShape s;
  s.n = n, s.h = h, s.w = w, s.c = c, s.ph = ph, s.pw = pw;
  s.stride_h = stride_h, s.stride_w = stride_w;
  s.oh = (h - ph) / stride_h + 1;
  s.ow = (w - pw) / stride_w + 1;
  return s;
}

// ------------------------------------------------------------------ finite differences
// Up to max_count distinct indices of [0, n), sorted; all of them when n <= max_count.
inline std::vector<size_t> sample_indices(size_t n, size_t max_count, uint64_t seed) {
  std::vector<size_t> idx(n);
  std::iota(idx.begin(), idx.end(), size_t(0));
  if (n > max_count) {
    std::mt19937_64 gen(seed);
    std::shuffle(idx.begin(), idx.end(), gen);
    idx.resize(max_count);
    std::sort(idx.begin(), idx.end());
  }
  return idx;
}

// Central differences d loss / d param[i] for each i in indices. The step actually taken is the
// representable difference T(p + eps) - T(p - eps), so float parameters lose nothing to rounding
// of the step itself. param is restored exactly.
template <class T>
std::vector<double> numeric_gradient(T* param, const std::vector<size_t>& indices, double eps,
                                     const std::function<double()>& loss) {
  std::vector<double> g(indices.size());
  for (size_t j = 0; j < indices.size(); ++j) {
    T& p = param[indices[j]];
    const T saved = p;
    const T plus = T(double(saved) + eps), minus = T(double(saved) - eps);
    p = plus;
    const double lp = loss();
    p = minus;
    const double lm = loss();
    p = saved;
    g[j] = (lp - lm) / (double(plus) - double(minus));
  }
  return g;
}

struct GradCheckResult {
  double rel_error = 0.0;     // relative L2 error of analytic vs numeric over the sampled entries
  double numeric_norm = 0.0;  // ||numeric||_2 (a check against an all-zero gradient is vacuous)
  size_t points = 0;
};

// Compares analytic[i] with the central difference of loss() w.r.t. param[i] on up to
// max_points sampled entries of param[0, n). loss() must read param (and only change nothing).
template <class T, class G>
GradCheckResult gradient_check(T* param, size_t n, const G* analytic, double eps,
                               const std::function<double()>& loss, size_t max_points = 48,
                               uint64_t seed = 7) {
  const std::vector<size_t> idx = sample_indices(n, max_points, seed);
  const std::vector<double> numeric = numeric_gradient(param, idx, eps, loss);
  std::vector<double> picked(idx.size());
  double norm = 0.0;
  for (size_t j = 0; j < idx.size(); ++j) {
    picked[j] = double(analytic[idx[j]]);
    norm += numeric[j] * numeric[j];
  }
  GradCheckResult r;
  r.rel_error = rel_l2_error(picked.data(), numeric.data(), idx.size());
  r.numeric_norm = std::sqrt(norm);
  r.points = idx.size();
  return r;
}

}  // namespace fer::testing
