#include "tests/reference/reference_ops.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <vector>

#include "kernels/common/philox.h"

namespace fer::reference {
namespace {

// Row-major index helpers, spelled out so every loop below reads like its formula.
int64_t nhwc(int64_t n, int64_t y, int64_t x, int64_t c, int64_t H, int64_t W, int64_t C) {
  return ((n * H + y) * W + x) * C + c;
}
int64_t ohwi(int64_t k, int64_t r, int64_t q, int64_t c, int64_t KH, int64_t KW, int64_t C) {
  return ((k * KH + r) * KW + q) * C + c;
}

}  // namespace

// ---------------------------------------------------------------- convolution
void conv2d_forward(const ConvShape& s, const double* x, const double* w, const double* b,
                    double* y) {
  for (int n = 0; n < s.n; ++n)
    for (int oy = 0; oy < s.oh; ++oy)
      for (int ox = 0; ox < s.ow; ++ox)
        for (int k = 0; k < s.k; ++k) {
          double acc = b ? b[k] : 0.0;
          for (int r = 0; r < s.kh; ++r)
            for (int q = 0; q < s.kw; ++q) {
              const int iy = oy * s.stride_h - s.pad_top + r;
              const int ix = ox * s.stride_w - s.pad_left + q;
              if (iy < 0 || iy >= s.h || ix < 0 || ix >= s.w) continue;
              for (int c = 0; c < s.c; ++c)
                acc += x[nhwc(n, iy, ix, c, s.h, s.w, s.c)] * w[ohwi(k, r, q, c, s.kh, s.kw, s.c)];
            }
          y[nhwc(n, oy, ox, k, s.oh, s.ow, s.k)] = acc;
        }
}

void conv2d_backward(const ConvShape& s, const double* x, const double* w, const double* dy,
                     double* dx, double* dw, double* db) {
  if (dx)
    for (int64_t i = 0; i < s.x_size(); ++i) dx[i] = 0.0;
  for (int64_t i = 0; i < s.w_size(); ++i) dw[i] = 0.0;
  if (db)
    for (int k = 0; k < s.k; ++k) db[k] = 0.0;
  for (int n = 0; n < s.n; ++n)
    for (int oy = 0; oy < s.oh; ++oy)
      for (int ox = 0; ox < s.ow; ++ox)
        for (int k = 0; k < s.k; ++k) {
          const double g = dy[nhwc(n, oy, ox, k, s.oh, s.ow, s.k)];
          if (db) db[k] += g;
          for (int r = 0; r < s.kh; ++r)
            for (int q = 0; q < s.kw; ++q) {
              const int iy = oy * s.stride_h - s.pad_top + r;
              const int ix = ox * s.stride_w - s.pad_left + q;
              if (iy < 0 || iy >= s.h || ix < 0 || ix >= s.w) continue;
              for (int c = 0; c < s.c; ++c) {
                const int64_t xi = nhwc(n, iy, ix, c, s.h, s.w, s.c);
                const int64_t wi = ohwi(k, r, q, c, s.kh, s.kw, s.c);
                dw[wi] += g * x[xi];
                if (dx) dx[xi] += g * w[wi];
              }
            }
        }
}

// ---------------------------------------------------------------- dense
void dense_forward(const DenseShape& s, const double* x, const double* w, const double* b,
                   double* y) {
  for (int n = 0; n < s.n; ++n)
    for (int o = 0; o < s.out; ++o) {
      double acc = b ? b[o] : 0.0;
      for (int i = 0; i < s.in; ++i) acc += x[int64_t(n) * s.in + i] * w[int64_t(i) * s.out + o];
      y[int64_t(n) * s.out + o] = acc;
    }
}

void dense_backward(const DenseShape& s, const double* x, const double* w, const double* dy,
                    double* dx, double* dw, double* db) {
  for (int i = 0; i < s.in; ++i)
    for (int o = 0; o < s.out; ++o) {
      double acc = 0.0;
      for (int n = 0; n < s.n; ++n) acc += x[int64_t(n) * s.in + i] * dy[int64_t(n) * s.out + o];
      dw[int64_t(i) * s.out + o] = acc;
    }
  if (db)
    for (int o = 0; o < s.out; ++o) {
      double acc = 0.0;
      for (int n = 0; n < s.n; ++n) acc += dy[int64_t(n) * s.out + o];
      db[o] = acc;
    }
  if (dx)
    for (int n = 0; n < s.n; ++n)
      for (int i = 0; i < s.in; ++i) {
        double acc = 0.0;
        for (int o = 0; o < s.out; ++o)
          acc += dy[int64_t(n) * s.out + o] * w[int64_t(i) * s.out + o];
        dx[int64_t(n) * s.in + i] = acc;
      }
}

// ---------------------------------------------------------------- activations
void activation_forward(Act act, int64_t n, int cols, const double* x, double* y) {
  if (act == Act::linear) {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i];
  } else if (act == Act::relu) {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] > 0.0 ? x[i] : 0.0;
  } else {
    std::vector<double> e(static_cast<size_t>(cols));
    for (int64_t r = 0; r < n / cols; ++r) {
      const double* xr = x + r * cols;
      double mx = xr[0];
      for (int j = 1; j < cols; ++j) mx = std::max(mx, xr[j]);
      double sum = 0.0;
      for (int j = 0; j < cols; ++j) sum += (e[size_t(j)] = std::exp(xr[j] - mx));
      for (int j = 0; j < cols; ++j) y[r * cols + j] = e[size_t(j)] / sum;
    }
  }
}

void activation_backward(Act act, int64_t n, int cols, const double* y, const double* dy,
                         double* dx) {
  if (act == Act::linear) {
    for (int64_t i = 0; i < n; ++i) dx[i] = dy[i];
  } else if (act == Act::relu) {
    for (int64_t i = 0; i < n; ++i) dx[i] = y[i] > 0.0 ? dy[i] : 0.0;
  } else {
    // Jacobian of softmax: d y_j / d x_i = y_j (delta_ij - y_i); dx_i = sum_j dy_j y_j (delta_ij -
    // y_i)
    std::vector<double> out(static_cast<size_t>(cols));
    for (int64_t r = 0; r < n / cols; ++r) {
      const double* yr = y + r * cols;
      const double* dyr = dy + r * cols;
      for (int i = 0; i < cols; ++i) {
        double acc = 0.0;
        for (int j = 0; j < cols; ++j) acc += dyr[j] * yr[j] * ((i == j ? 1.0 : 0.0) - yr[i]);
        out[size_t(i)] = acc;
      }
      for (int i = 0; i < cols; ++i) dx[r * cols + i] = out[size_t(i)];
    }
  }
}

// ---------------------------------------------------------------- batch normalisation
void batchnorm_forward_train(const BatchNormShape& s, const double* x, const double* gamma,
                             const double* beta, double* y, double* save_mean, double* save_invstd,
                             double* moving_mean, double* moving_var, double momentum,
                             double epsilon) {
  const int C = s.channels;
  for (int c = 0; c < C; ++c) {
    double mean = 0.0;
    for (int64_t i = 0; i < s.rows; ++i) mean += x[i * C + c];
    mean /= double(s.rows);
    double sq = 0.0;
    for (int64_t i = 0; i < s.rows; ++i) sq += (x[i * C + c] - mean) * (x[i * C + c] - mean);
    const double var = sq / double(s.rows);
    const double unbiased = s.rows > 1 ? sq / double(s.rows - 1) : var;
    const double invstd = 1.0 / std::sqrt(var + epsilon);
    for (int64_t i = 0; i < s.rows; ++i)
      y[i * C + c] = gamma[c] * (x[i * C + c] - mean) * invstd + beta[c];
    save_mean[c] = mean;
    save_invstd[c] = invstd;
    moving_mean[c] = momentum * moving_mean[c] + (1.0 - momentum) * mean;
    moving_var[c] = momentum * moving_var[c] + (1.0 - momentum) * unbiased;
  }
}

void batchnorm_forward_infer(const BatchNormShape& s, const double* x, const double* gamma,
                             const double* beta, const double* moving_mean,
                             const double* moving_var, double* y, double epsilon) {
  const int C = s.channels;
  for (int64_t i = 0; i < s.rows; ++i)
    for (int c = 0; c < C; ++c)
      y[i * C + c] =
          gamma[c] * (x[i * C + c] - moving_mean[c]) / std::sqrt(moving_var[c] + epsilon) + beta[c];
}

void batchnorm_backward(const BatchNormShape& s, const double* x, const double* gamma,
                        const double* dy, const double* save_mean, const double* save_invstd,
                        double* dx, double* dgamma, double* dbeta) {
  // With xhat = (x - mean) * invstd and y = gamma * xhat + beta over N rows:
  //   dbeta = sum dy, dgamma = sum dy * xhat,
  //   dx = gamma * invstd / N * (N dy - dbeta - xhat * dgamma).
  const int C = s.channels;
  const double N = double(s.rows);
  for (int c = 0; c < C; ++c) {
    double sum_dy = 0.0, sum_dy_xhat = 0.0;
    for (int64_t i = 0; i < s.rows; ++i) {
      const double xhat = (x[i * C + c] - save_mean[c]) * save_invstd[c];
      sum_dy += dy[i * C + c];
      sum_dy_xhat += dy[i * C + c] * xhat;
    }
    dbeta[c] = sum_dy;
    dgamma[c] = sum_dy_xhat;
    for (int64_t i = 0; i < s.rows; ++i) {
      const double xhat = (x[i * C + c] - save_mean[c]) * save_invstd[c];
      dx[i * C + c] =
          gamma[c] * save_invstd[c] / N * (N * dy[i * C + c] - sum_dy - xhat * sum_dy_xhat);
    }
  }
}

// ---------------------------------------------------------------- pooling
void pool2d_forward(const PoolShape& s, PoolMode mode, const double* x, double* y) {
  for (int n = 0; n < s.n; ++n)
    for (int oy = 0; oy < s.oh; ++oy)
      for (int ox = 0; ox < s.ow; ++ox)
        for (int c = 0; c < s.c; ++c) {
          double acc = mode == PoolMode::max ? -INFINITY : 0.0;
          for (int r = 0; r < s.ph; ++r)
            for (int q = 0; q < s.pw; ++q) {
              const double v =
                  x[nhwc(n, oy * s.stride_h + r, ox * s.stride_w + q, c, s.h, s.w, s.c)];
              if (mode == PoolMode::max) {
                if (v > acc) acc = v;
              } else {
                acc += v;
              }
            }
          if (mode == PoolMode::average) acc /= double(s.ph * s.pw);
          y[nhwc(n, oy, ox, c, s.oh, s.ow, s.c)] = acc;
        }
}

void pool2d_backward(const PoolShape& s, PoolMode mode, const double* x, const double* y,
                     const double* dy, double* dx) {
  (void)y;
  for (int64_t i = 0; i < s.x_size(); ++i) dx[i] = 0.0;
  for (int n = 0; n < s.n; ++n)
    for (int oy = 0; oy < s.oh; ++oy)
      for (int ox = 0; ox < s.ow; ++ox)
        for (int c = 0; c < s.c; ++c) {
          const double g = dy[nhwc(n, oy, ox, c, s.oh, s.ow, s.c)];
          if (mode == PoolMode::average) {
            for (int r = 0; r < s.ph; ++r)
              for (int q = 0; q < s.pw; ++q)
                dx[nhwc(n, oy * s.stride_h + r, ox * s.stride_w + q, c, s.h, s.w, s.c)] +=
                    g / double(s.ph * s.pw);
            continue;
          }
          int64_t best = -1;
          double best_v = -INFINITY;
          for (int r = 0; r < s.ph; ++r)
            for (int q = 0; q < s.pw; ++q) {
              const int64_t at =
                  nhwc(n, oy * s.stride_h + r, ox * s.stride_w + q, c, s.h, s.w, s.c);
              if (best < 0 || x[at] > best_v) {
                best = at;
                best_v = x[at];
              }
            }
          dx[best] += g;
        }
}

// ---------------------------------------------------------------- dropout
void dropout_forward(int64_t n, float rate, uint64_t seed, uint64_t stream_id, const double* x,
                     double* y) {
  for (int64_t i = 0; i < n; ++i)
    y[i] = kernels::dropout_keep(seed, stream_id, uint64_t(i), rate) ? x[i] / (1.0 - double(rate))
                                                                     : 0.0;
}

void dropout_backward(int64_t n, float rate, uint64_t seed, uint64_t stream_id, const double* dy,
                      double* dx) {
  dropout_forward(n, rate, seed, stream_id, dy, dx);  // the same linear map: diagonal mask/(1-rate)
}

// ---------------------------------------------------------------- softmax + cross-entropy
void softmax_cross_entropy(int rows, int classes, const double* logits, const int32_t* labels,
                           double* dlogits, double grad_scale, double* metrics) {
  std::vector<double> p(static_cast<size_t>(classes));
  for (int r = 0; r < rows; ++r) {
    const double* z = logits + int64_t(r) * classes;
    const int label = labels[r];
    if (label < 0 || label >= classes) std::abort();
    int arg = 0;
    for (int j = 1; j < classes; ++j)
      if (z[j] > z[arg]) arg = j;
    double sum = 0.0;
    for (int j = 0; j < classes; ++j) sum += std::exp(z[j] - z[arg]);
    for (int j = 0; j < classes; ++j) p[size_t(j)] = std::exp(z[j] - z[arg]) / sum;
    metrics[0] += -(z[label] - z[arg] - std::log(sum));  // -log p[label], computed stably
    metrics[1] += arg == label ? 1.0 : 0.0;
    if (dlogits)
      for (int j = 0; j < classes; ++j)
        dlogits[int64_t(r) * classes + j] = (p[size_t(j)] - (j == label ? 1.0 : 0.0)) * grad_scale;
  }
}

// ---------------------------------------------------------------- optimizers
void adam_update(int64_t n, double* params, const double* grads, double* m, double* v,
                 const AdamParams& p) {
  const double b1 = p.beta1, b2 = p.beta2, t = double(p.step);
  const double lr_t = double(p.lr) * std::sqrt(1.0 - std::pow(b2, t)) / (1.0 - std::pow(b1, t));
  for (int64_t i = 0; i < n; ++i) {
    m[i] = b1 * m[i] + (1.0 - b1) * grads[i];
    v[i] = b2 * v[i] + (1.0 - b2) * grads[i] * grads[i];
    params[i] -= lr_t * m[i] / (std::sqrt(v[i]) + double(p.epsilon));
  }
}

void sgd_update(int64_t n, double* params, const double* grads, double* velocity,
                const SgdParams& p) {
  const double lr = p.lr, mom = p.momentum;
  for (int64_t i = 0; i < n; ++i) {
    if (mom == 0.0 || velocity == nullptr) {
      params[i] -= lr * grads[i];
      continue;
    }
    velocity[i] = mom * velocity[i] - lr * grads[i];
    params[i] += p.nesterov ? mom * velocity[i] - lr * grads[i] : velocity[i];
  }
}

}  // namespace fer::reference
