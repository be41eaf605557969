#include "kernels/cpu/conv2d.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "kernels/cpu/bf16.h"
#include "kernels/cpu/conv2d_c1.h"
#include "kernels/cpu/conv2d_onednn.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/parallel.h"

namespace fer::kernels::cpu {
namespace {

// The unfolded matrix `col` has one row per output pixel p = (n*oh + oy)*ow + ox and one column
// per tap (r*kw + q)*c + ch, matching the OHWI weight layout: y = col * W^T with W as [k, K].
int64_t taps(const ConvShape& s) { return int64_t(s.kh) * s.kw * s.c; }
int64_t total_pixels(const ConvShape& s) { return int64_t(s.n) * s.oh * s.ow; }

bool is_pointwise(const ConvShape& s) {
  return s.kh == 1 && s.kw == 1 && s.stride_h == 1 && s.stride_w == 1 && s.pad_top == 0 &&
         s.pad_left == 0 && s.oh == s.h && s.ow == s.w;
}

// Fixed at first use so that the workspace size and the kernels always agree.
int conv_threads() {
  static const int threads = std::max(1, omp_get_max_threads());
  return threads;
}

// Convolutions below this many flops run in the calling thread (see kMinParallelElements).
constexpr int64_t kMinParallelFlops = 2000000;

int forward_team(const ConvShape& s) { return s.flops() < kMinParallelFlops ? 1 : conv_threads(); }

// Output pixels per block: about 512 KiB of unfolded input per thread (fits in L2 next to the
// packed weights), at least 32 rows for GEMM efficiency, a multiple of 16.
int64_t block_pixels(const ConvShape& s) {
  const int64_t K = std::max<int64_t>(taps(s), 1);
  int64_t p = (int64_t(128) * 1024) / K;
  p = std::clamp<int64_t>(p, 32, 4096) / 16 * 16;
  return std::max<int64_t>(1, std::min(p, total_pixels(s)));
}

// Backward: up to min(threads, n) threads, each with its own col and d(col) block and, beyond the
// first, its own dw partial (dw-sized) after all the blocks.
struct BackwardLayout {
  int teams;
  int64_t block;            // pixels per block
  int64_t partials_offset;  // floats from the workspace start to the first dw partial
  int64_t floats;           // workspace floats in all
};
BackwardLayout backward_layout(const ConvShape& s) {
  BackwardLayout L;
  L.teams = s.flops() < kMinParallelFlops ? 1 : std::max(1, std::min(conv_threads(), s.n));
  L.block = block_pixels(s);
  L.partials_offset = int64_t(L.teams) * 2 * L.block * taps(s);
  L.floats = L.partials_offset + int64_t(L.teams - 1) * s.w_size();
  return L;
}

// Unfolds output pixels [p0, p1) into col (row-major, K columns).
void im2col_range(const ConvShape& s, const float* x, int64_t p0, int64_t p1, float* col) {
  const int64_t K = taps(s);
  const size_t row_bytes = sizeof(float) * size_t(s.kw) * size_t(s.c);
  const size_t pix_bytes = sizeof(float) * size_t(s.c);
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t img = p / (int64_t(s.oh) * s.ow);
    const int rem = int(p % (int64_t(s.oh) * s.ow));
    const int oy = rem / s.ow, ox = rem % s.ow;
    const float* image = x + img * s.h * s.w * s.c;
    float* dst = col + (p - p0) * K;
    const int ix0 = ox * s.stride_w - s.pad_left;
    const bool row_inside = ix0 >= 0 && ix0 + s.kw <= s.w;
    for (int r = 0; r < s.kh; ++r) {
      const int iy = oy * s.stride_h - s.pad_top + r;
      float* d = dst + int64_t(r) * s.kw * s.c;
      if (iy < 0 || iy >= s.h) {
        std::memset(d, 0, row_bytes);
        continue;
      }
      const float* src = image + (int64_t(iy) * s.w) * s.c;
      if (row_inside) {  // the whole kernel row lies inside the image: one copy
        std::memcpy(d, src + int64_t(ix0) * s.c, row_bytes);
        continue;
      }
      for (int q = 0; q < s.kw; ++q) {
        const int ix = ix0 + q;
        if (ix < 0 || ix >= s.w) {
          std::memset(d + int64_t(q) * s.c, 0, pix_bytes);
        } else {
          std::memcpy(d + int64_t(q) * s.c, src + int64_t(ix) * s.c, pix_bytes);
        }
      }
    }
  }
}

// The adjoint of im2col for pixels [p0, p1): adds each d(col) entry back onto the input element
// it was read from.
void col2im_range(const ConvShape& s, const float* dcol, int64_t p0, int64_t p1, float* dx) {
  const int64_t K = taps(s);
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t img = p / (int64_t(s.oh) * s.ow);
    const int rem = int(p % (int64_t(s.oh) * s.ow));
    const int oy = rem / s.ow, ox = rem % s.ow;
    float* image = dx + img * s.h * s.w * s.c;
    const float* src_row = dcol + (p - p0) * K;
    for (int r = 0; r < s.kh; ++r) {
      const int iy = oy * s.stride_h - s.pad_top + r;
      if (iy < 0 || iy >= s.h) continue;
      for (int q = 0; q < s.kw; ++q) {
        const int ix = ox * s.stride_w - s.pad_left + q;
        if (ix < 0 || ix >= s.w) continue;
        float* d = image + (int64_t(iy) * s.w + ix) * s.c;
        const float* g = src_row + (int64_t(r) * s.kw + q) * s.c;
#pragma omp simd
        for (int ch = 0; ch < s.c; ++ch) d[ch] += g[ch];
      }
    }
  }
}

// [lo, hi) of `extent` for member t of a team of `team`.
void split(int64_t extent, int t, int team, int64_t* lo, int64_t* hi) {
  const int64_t per = (extent + team - 1) / team;
  *lo = std::min<int64_t>(extent, per * t);
  *hi = std::min<int64_t>(extent, *lo + per);
}

void fill_bias_rows(float* y, int64_t rows, int k, const float* b) {
  for (int64_t i = 0; i < rows; ++i) {
    if (b) {
      std::memcpy(y + i * k, b, sizeof(float) * size_t(k));
    } else {
      std::memset(y + i * k, 0, sizeof(float) * size_t(k));
    }
  }
}

size_t im2col_workspace_bytes(const ConvShape& s) {
  if (is_pointwise(s) || total_pixels(s) == 0) return 0;
  const int64_t forward = int64_t(conv_threads()) * block_pixels(s) * taps(s);
  return size_t(std::max(forward, backward_layout(s).floats)) * sizeof(float);
}

ConvImpl impl_from_environment() {
  const char* v = std::getenv("FER_CPU_CONV");
  if (!v || !*v) return ConvImpl::automatic;
  const std::string name(v);
  if (name == "auto" || name == "automatic") return ConvImpl::automatic;
  if (name == "im2col") return ConvImpl::im2col;
  if (name == "onednn") return ConvImpl::onednn;
  throw std::invalid_argument("FER_CPU_CONV must be auto, im2col or onednn, not '" + name + "'");
}

std::atomic<int>& impl_setting() {
  static std::atomic<int> setting{int(impl_from_environment())};
  return setting;
}

bool use_onednn_forward(const ConvShape& s) {
  return conv_impl() != ConvImpl::im2col && onednn::compiled() && onednn::forward_supported(s);
}
bool use_onednn_backward(const ConvShape& s) {
  return conv_impl() != ConvImpl::im2col && onednn::compiled() && onednn::backward_supported(s);
}
// MathType::bf16 on oneDNN's bf16 primitives (the setting's conv implementation is for FP32).
bool use_native_bf16_forward(const ConvShape& s) {
  return bf16_native_enabled() && onednn::compiled() && onednn::forward_supported(s);
}
bool use_native_bf16_backward(const ConvShape& s) {
  return bf16_native_enabled() && onednn::compiled() && onednn::backward_supported(s);
}

ConvShape as_f32(const ConvShape& s) {
  ConvShape f = s;
  f.math = MathType::f32;
  return f;
}

// Emulated bf16 (bf16.h): the operands rounded to bf16 into FP32 copies at the start of the
// workspace, [x][w][dy], then the FP32 convolution with the rest of the workspace.
constexpr size_t kCopyAlign = 64;
size_t copy_bytes(int64_t floats) {
  return (size_t(floats) * sizeof(float) + kCopyAlign - 1) / kCopyAlign * kCopyAlign;
}
size_t emulated_bf16_workspace_bytes(const ConvShape& s) {
  return copy_bytes(s.x_size()) + copy_bytes(s.w_size()) + copy_bytes(s.y_size()) +
         conv2d_workspace_bytes(as_f32(s));
}
void emulated_bf16_forward(const ConvShape& s, const float* x, const float* w, const float* b,
                           float* y, void* workspace) {
  char* ws = static_cast<char*>(workspace);
  float* xr = reinterpret_cast<float*>(ws);
  float* wr = reinterpret_cast<float*>(ws + copy_bytes(s.x_size()));
  void* rest = ws + copy_bytes(s.x_size()) + copy_bytes(s.w_size()) + copy_bytes(s.y_size());
  round_to_bf16(x, xr, s.x_size());
  round_to_bf16(w, wr, s.w_size());
  conv2d_forward(as_f32(s), xr, wr, b, y, rest);
}
void emulated_bf16_backward(const ConvShape& s, const float* x, const float* w, const float* dy,
                            float* dx, float* dw, float* db, void* workspace) {
  char* ws = static_cast<char*>(workspace);
  float* xr = reinterpret_cast<float*>(ws);
  float* wr = reinterpret_cast<float*>(ws + copy_bytes(s.x_size()));
  float* dyr = reinterpret_cast<float*>(ws + copy_bytes(s.x_size()) + copy_bytes(s.w_size()));
  void* rest = ws + copy_bytes(s.x_size()) + copy_bytes(s.w_size()) + copy_bytes(s.y_size());
  round_to_bf16(x, xr, s.x_size());
  if (dx) round_to_bf16(w, wr, s.w_size());
  round_to_bf16(dy, dyr, s.y_size());
  conv2d_backward(as_f32(s), xr, wr, dyr, dx, dw, db, rest);
}
bool use_c1_backward(const ConvShape& s) {
  return conv_impl() == ConvImpl::automatic && c1::supported(s);
}

void im2col_forward(const ConvShape& s, const float* x, const float* w, const float* b, float* y,
                    void* workspace);
void im2col_backward(const ConvShape& s, const float* x, const float* w, const float* dy,
                     float* dx, float* dw, float* db, void* workspace);

}  // namespace

void set_conv_impl(ConvImpl impl) { impl_setting().store(int(impl)); }
ConvImpl conv_impl() { return ConvImpl(impl_setting().load()); }
const char* conv_impl_name(ConvImpl impl) {
  switch (impl) {
    case ConvImpl::automatic: return "auto";
    case ConvImpl::im2col: return "im2col";
    case ConvImpl::onednn: return "onednn";
  }
  return "?";
}
bool conv_onednn_compiled() { return onednn::compiled(); }
const char* conv_forward_impl_for(const ConvShape& s) {
  if (s.math == MathType::bf16) return use_native_bf16_forward(s) ? "onednn-bf16" : "bf16-emulated";
  return use_onednn_forward(s) ? "onednn" : "im2col";
}
const char* conv_backward_impl_for(const ConvShape& s) {
  if (s.math == MathType::bf16) return use_native_bf16_backward(s) ? "onednn-bf16" : "bf16-emulated";
  if (use_c1_backward(s)) return "c1";
  return use_onednn_backward(s) ? "onednn" : "im2col";
}

size_t conv2d_workspace_bytes(const ConvShape& s) {
  if (s.math == MathType::bf16) {
    // Either path may run (set_bf16_impl may change between the query and the call).
    const size_t emulated = emulated_bf16_workspace_bytes(s);
    return onednn::compiled() ? std::max(emulated, onednn::workspace_bytes(s)) : emulated;
  }
  const size_t im2col = im2col_workspace_bytes(s);
  if (!onednn::compiled()) return im2col;
  return std::max(im2col, onednn::workspace_bytes(s));
}

void conv2d_forward(const ConvShape& s, const float* x, const float* w, const float* b, float* y,
                    void* workspace) {
  if (s.math == MathType::bf16) {
    if (use_native_bf16_forward(s)) {
      onednn::forward(s, x, w, b, y, workspace);
    } else {
      emulated_bf16_forward(s, x, w, b, y, workspace);
    }
    return;
  }
  if (use_onednn_forward(s)) {
    onednn::forward(s, x, w, b, y, workspace);
  } else {
    im2col_forward(s, x, w, b, y, workspace);
  }
}

void conv2d_backward(const ConvShape& s, const float* x, const float* w, const float* dy, float* dx,
                     float* dw, float* db, void* workspace) {
  if (s.math == MathType::bf16) {
    if (use_native_bf16_backward(s)) {
      onednn::backward(s, x, w, dy, dx, dw, db, workspace);
    } else {
      emulated_bf16_backward(s, x, w, dy, dx, dw, db, workspace);
    }
    return;
  }
  if (use_c1_backward(s)) {
    c1::backward(s, x, w, dy, dx, dw, db);
  } else if (use_onednn_backward(s)) {
    onednn::backward(s, x, w, dy, dx, dw, db, workspace);
  } else {
    im2col_backward(s, x, w, dy, dx, dw, db, workspace);
  }
}

namespace {

void im2col_forward(const ConvShape& s, const float* x, const float* w, const float* b, float* y,
                    void* workspace) {
  detail::use_single_threaded_blas();
  const int64_t K = taps(s);
  const int64_t pixels = total_pixels(s);
  if (pixels == 0 || s.k == 0) return;
  const bool pointwise = is_pointwise(s);
  const int64_t block = block_pixels(s);
  const int64_t blocks = (pixels + block - 1) / block;
  float* ws = static_cast<float*>(workspace);
#pragma omp parallel num_threads(forward_team(s))
  {
    float* col = pointwise ? nullptr : ws + int64_t(omp_get_thread_num()) * block * K;
#pragma omp for schedule(static)
    for (int64_t bi = 0; bi < blocks; ++bi) {
      const int64_t p0 = bi * block, p1 = std::min(pixels, p0 + block);
      const float* a = x + p0 * K;  // pointwise: the input rows are the unfolded rows
      if (!pointwise) {
        im2col_range(s, x, p0, p1, col);
        a = col;
      }
      fill_bias_rows(y + p0 * s.k, p1 - p0, s.k, b);
      detail::sgemm(false, true, int(p1 - p0), s.k, int(K), 1.0f, a, int(K), w, int(K), 1.0f,
                    y + p0 * s.k, s.k);
    }
  }
}

void im2col_backward(const ConvShape& s, const float* x, const float* w, const float* dy,
                     float* dx, float* dw, float* db, void* workspace) {
  detail::use_single_threaded_blas();
  const int64_t K = taps(s);
  const int64_t pixels = total_pixels(s);
  if (db) detail::column_sums(dy, pixels, s.k, db);
  if (pixels == 0 || s.k == 0) {
    std::memset(dw, 0, sizeof(float) * size_t(s.w_size()));
    if (dx) std::memset(dx, 0, sizeof(float) * size_t(s.x_size()));
    return;
  }
  if (is_pointwise(s)) {
    // dw[k, c] = dy^T x and dx[pixels, c] = dy W: two GEMMs split across the team.
    detail::parallel_sgemm(true, false, s.k, int(K), int(pixels), 1.0f, dy, s.k, x, int(K), 0.0f,
                           dw, int(K));
    if (dx) {
      detail::parallel_sgemm(false, false, int(pixels), int(K), s.k, 1.0f, dy, s.k, w, int(K), 0.0f,
                             dx, int(K));
    }
    return;
  }
  // Each thread takes whole images, so its folds into dx never meet another thread's; it
  // accumulates its own dw (thread 0 straight into dw, the others into workspace partials that
  // are summed at the end). No synchronisation inside the loop: a busy core elsewhere (the data
  // loader) then delays one thread, not every block.
  const BackwardLayout L = backward_layout(s);
  const int64_t per_image = int64_t(s.oh) * s.ow;
  const int64_t image = int64_t(s.h) * s.w * s.c;
  const int64_t wsize = s.w_size();
  float* ws = static_cast<float*>(workspace);
#pragma omp parallel num_threads(L.teams)
  {
    const int t = omp_get_thread_num(), team = omp_get_num_threads();
    int64_t i0, i1;
    split(s.n, t, team, &i0, &i1);
    float* col = ws + int64_t(t) * 2 * L.block * K;
    float* dcol = col + L.block * K;
    float* dw_acc = t == 0 ? dw : ws + L.partials_offset + int64_t(t - 1) * wsize;
    if (dx) std::memset(dx + i0 * image, 0, sizeof(float) * size_t((i1 - i0) * image));
    if (i0 == i1) std::memset(dw_acc, 0, sizeof(float) * size_t(wsize));
    const int64_t end = i1 * per_image;
    for (int64_t p0 = i0 * per_image; p0 < end; p0 += L.block) {
      const int64_t p1 = std::min(end, p0 + L.block), m = p1 - p0;
      const float* dy_blk = dy + p0 * s.k;
      im2col_range(s, x, p0, p1, col);
      detail::sgemm(true, false, s.k, int(K), int(m), 1.0f, dy_blk, s.k, col, int(K),
                    p0 == i0 * per_image ? 0.0f : 1.0f, dw_acc, int(K));
      if (dx) {
        detail::sgemm(false, false, int(m), int(K), s.k, 1.0f, dy_blk, s.k, w, int(K), 0.0f, dcol,
                      int(K));
        col2im_range(s, dcol, p0, p1, dx);
      }
    }
    if (team > 1) {
#pragma omp barrier
#pragma omp for schedule(static)
      for (int64_t j = 0; j < wsize; ++j) {
        float sum = dw[j];
        for (int u = 1; u < team; ++u) sum += ws[L.partials_offset + int64_t(u - 1) * wsize + j];
        dw[j] = sum;
      }
    }
  }
}

}  // namespace
}  // namespace fer::kernels::cpu
