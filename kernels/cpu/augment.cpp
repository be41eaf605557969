#include "kernels/cpu/augment.h"

#include <cstddef>

namespace fer::kernels::cpu {

void images_to_float(int n, int h, int w, const uint8_t* src, const AugmentDraw* draws,
                     float* dst) {
  const int64_t pixels = int64_t(h) * w;
  if (!draws) {
    const int64_t total = int64_t(n) * pixels;
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < total; ++i) dst[i] = float(src[i]) * kPixelScale;
    return;
  }
#pragma omp parallel for schedule(static)
  for (int i = 0; i < n; ++i) {
    const uint8_t* img = src + i * pixels;
    float* out = dst + i * pixels;
    const AugmentMap m = augment_map(draws[i], h, w);
    for (int r = 0; r < h; ++r) {
      for (int c = 0; c < w; ++c) out[r * w + c] = augment_pixel(img, h, w, m, r, c) * kPixelScale;
    }
  }
}

void augment_draws(int n, const int32_t* indices, const int64_t* keys, uint64_t seed,
                   uint64_t epoch, const AugmentConfig& cfg, AugmentDraw* dst) {
  for (int i = 0; i < n; ++i) {
    const int64_t key = keys ? keys[indices[i]] : int64_t(indices[i]);
    dst[i] = augment_draw(seed, epoch, uint64_t(key), cfg);
  }
}

}  // namespace fer::kernels::cpu
