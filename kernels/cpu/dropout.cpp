#include "kernels/cpu/dropout.h"

#include <cstring>

#include "kernels/common/philox.h"
#include "kernels/cpu/parallel.h"

namespace fer::kernels::cpu {
namespace {

// Element i uses word i % 4 of Philox4x32-10 at counter (i / 4, stream_id) under key `seed`
// (philox_uniform_at). This computes kLanes consecutive counters at once, lane-parallel so the
// compiler vectorises the rounds; the arithmetic is philox4x32's, word for word.
constexpr int kLanes = 16;

struct PhiloxBlock {
  uint32_t v[4][kLanes];  // v[word][lane]
};

void philox_lanes(uint64_t first_counter, uint64_t stream_id, uint64_t key, PhiloxBlock* out) {
  uint32_t c0[kLanes], c1[kLanes], c2[kLanes], c3[kLanes];
  for (int l = 0; l < kLanes; ++l) {
    const uint64_t ctr = first_counter + uint64_t(l);
    c0[l] = uint32_t(ctr);
    c1[l] = uint32_t(ctr >> 32);
    c2[l] = uint32_t(stream_id);
    c3[l] = uint32_t(stream_id >> 32);
  }
  uint32_t k0 = uint32_t(key), k1 = uint32_t(key >> 32);
  for (int round = 0; round < 10; ++round) {
#pragma omp simd
    for (int l = 0; l < kLanes; ++l) {
      const uint64_t p0 = uint64_t(0xD2511F53u) * uint64_t(c0[l]);
      const uint64_t p1 = uint64_t(0xCD9E8D57u) * uint64_t(c2[l]);
      const uint32_t hi0 = uint32_t(p0 >> 32), lo0 = uint32_t(p0);
      const uint32_t hi1 = uint32_t(p1 >> 32), lo1 = uint32_t(p1);
      const uint32_t n0 = hi1 ^ c1[l] ^ k0, n2 = hi0 ^ c3[l] ^ k1;
      c0[l] = n0;
      c1[l] = lo1;
      c2[l] = n2;
      c3[l] = lo0;
    }
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  for (int l = 0; l < kLanes; ++l) {
    out->v[0][l] = c0[l];
    out->v[1][l] = c1[l];
    out->v[2][l] = c2[l];
    out->v[3][l] = c3[l];
  }
}

// y[i] = keep(i) ? x[i] * (1 / (1 - rate)) : 0, with keep(i) == dropout_keep(seed, stream, i,
// rate).
void apply_mask(int64_t n, float rate, uint64_t seed, uint64_t stream_id, const float* x,
                float* y) {
  if (rate <= 0.0f) {  // every uniform is >= 0: all kept, scale 1
    if (x != y) std::memmove(y, x, sizeof(float) * size_t(n));
    return;
  }
  const float scale = 1.0f / (1.0f - rate);
  constexpr int64_t kPerBlock = 4 * kLanes;
  const int64_t blocks = (n + kPerBlock - 1) / kPerBlock;
#pragma omp parallel for schedule(static) if (n >= detail::kMinParallelElements)
  for (int64_t b = 0; b < blocks; ++b) {
    PhiloxBlock r;
    philox_lanes(uint64_t(b) * kLanes, stream_id, seed, &r);
    const int64_t i0 = b * kPerBlock;
    const int64_t count = n - i0 < kPerBlock ? n - i0 : kPerBlock;
    // Element j of the block is word j % 4 of lane j / 4.
    unsigned char keep[kPerBlock];
    for (int word = 0; word < 4; ++word) {
#pragma omp simd
      for (int l = 0; l < kLanes; ++l) keep[4 * l + word] = philox_uniform(r.v[word][l]) >= rate;
    }
    const float* xb = x + i0;
    float* yb = y + i0;
#pragma omp simd
    for (int64_t j = 0; j < count; ++j) yb[j] = keep[j] ? xb[j] * scale : 0.0f;
  }
}

}  // namespace

void dropout_forward(int64_t n, float rate, uint64_t seed, uint64_t stream_id, const float* x,
                     float* y) {
  apply_mask(n, rate, seed, stream_id, x, y);
}

void dropout_backward(int64_t n, float rate, uint64_t seed, uint64_t stream_id, const float* dy,
                      float* dx) {
  apply_mask(n, rate, seed, stream_id, dy, dx);
}

}  // namespace fer::kernels::cpu
