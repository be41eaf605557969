#include "kernels/cpu/dropout.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#if defined(__AVX512F__) && defined(__BMI2__)
#include <immintrin.h>
#endif

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

#if defined(__AVX512F__) && defined(__BMI2__)
// GCC 12 flags the intrinsics' own "undefined" pass-through operands as maybe-uninitialized.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// The same Philox4x32-10 as philox_lanes, 16 lanes in AVX-512 registers: the 32x32->64-bit
// products come from vpmuludq on the even and the odd lanes (the portable loop above compiles to
// 64-bit vpmullq on half-width lanes, about 3x slower). Lane l gets counter first_counter + l;
// first_counter is a multiple of 16, so the low words of the 16 counters never wrap.
inline void philox16(uint64_t first_counter, uint64_t stream_id, uint64_t key, __m512i v[4]) {
  const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  __m512i c0 = _mm512_add_epi32(_mm512_set1_epi32(int(uint32_t(first_counter))), lanes);
  __m512i c1 = _mm512_set1_epi32(int(uint32_t(first_counter >> 32)));
  __m512i c2 = _mm512_set1_epi32(int(uint32_t(stream_id)));
  __m512i c3 = _mm512_set1_epi32(int(uint32_t(stream_id >> 32)));
  const __m512i m0 = _mm512_set1_epi64(0xD2511F53LL), m1 = _mm512_set1_epi64(0xCD9E8D57LL);
  constexpr __mmask16 kOdd = 0xAAAA;
  uint32_t k0 = uint32_t(key), k1 = uint32_t(key >> 32);
  for (int round = 0; round < 10; ++round) {
    const __m512i p0e = _mm512_mul_epu32(c0, m0);                         // even lanes' products
    const __m512i p0o = _mm512_mul_epu32(_mm512_srli_epi64(c0, 32), m0);  // odd lanes' products
    const __m512i p1e = _mm512_mul_epu32(c2, m1);
    const __m512i p1o = _mm512_mul_epu32(_mm512_srli_epi64(c2, 32), m1);
    const __m512i hi0 = _mm512_mask_blend_epi32(kOdd, _mm512_srli_epi64(p0e, 32), p0o);
    const __m512i lo0 = _mm512_mask_blend_epi32(kOdd, p0e, _mm512_slli_epi64(p0o, 32));
    const __m512i hi1 = _mm512_mask_blend_epi32(kOdd, _mm512_srli_epi64(p1e, 32), p1o);
    const __m512i lo1 = _mm512_mask_blend_epi32(kOdd, p1e, _mm512_slli_epi64(p1o, 32));
    c0 = _mm512_xor_si512(_mm512_xor_si512(hi1, c1), _mm512_set1_epi32(int(k0)));
    c1 = lo1;
    c2 = _mm512_xor_si512(_mm512_xor_si512(hi0, c3), _mm512_set1_epi32(int(k1)));
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  v[0] = c0;
  v[1] = c1;
  v[2] = c2;
  v[3] = c3;
}

// Bit e of the result is bit e/4 of m[e%4]: the keep flags of word w of lane l (element 4l+w)
// put back in element order.
inline uint64_t interleave4(const __mmask16 m[4]) {
  return _pdep_u64(m[0], 0x1111111111111111ULL) | _pdep_u64(m[1], 0x2222222222222222ULL) |
         _pdep_u64(m[2], 0x4444444444444444ULL) | _pdep_u64(m[3], 0x8888888888888888ULL);
}

// apply_mask with philox16. keep(i) == (philox_uniform(bits) >= rate) == ((bits >> 8) >= T) with
// T = ceil(rate * 2^24) (philox_uniform is exact: a 24-bit integer times 2^-24), i.e.
// bits >= T << 8 as unsigned integers; T < 2^24 here (rate < 1).
void apply_mask_avx512(int64_t n, uint32_t threshold, float scale, uint64_t seed,
                       uint64_t stream_id, uint64_t first_block, const float* x, float* y) {
  constexpr int64_t kPerBlock = 64;  // 16 lanes x 4 words
  const int64_t blocks = (n + kPerBlock - 1) / kPerBlock;
  const __m512i thr = _mm512_set1_epi32(int(threshold));
  const __m512 vscale = _mm512_set1_ps(scale);
#pragma omp parallel for schedule(static) if (n >= detail::kMinParallelElements)
  for (int64_t b = 0; b < blocks; ++b) {
    __m512i r[4];
    philox16((first_block + uint64_t(b)) * 16, stream_id, seed, r);
    __mmask16 keep[4];
    for (int w = 0; w < 4; ++w) keep[w] = _mm512_cmpge_epu32_mask(r[w], thr);
    uint64_t mask = interleave4(keep);
    const int64_t i0 = b * kPerBlock;
    const int64_t count = n - i0 < kPerBlock ? n - i0 : kPerBlock;
    for (int64_t j = 0; j < count; j += 16, mask >>= 16) {
      const int64_t left = count - j;
      const __mmask16 valid = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1u);
      const __m512 xv = _mm512_maskz_loadu_ps(valid, x + i0 + j);
      const __m512 yv = _mm512_maskz_mul_ps(__mmask16(mask & 0xFFFF), xv, vscale);
      _mm512_mask_storeu_ps(y + i0 + j, valid, yv);
    }
  }
}
#pragma GCC diagnostic pop
#endif

// y[i] = keep(i) ? x[i] * (1 / (1 - rate)) : 0, with keep(i) == dropout_keep(seed, stream,
// first + i, rate). The block loops below start at a multiple of 64 stream elements (16 Philox
// counters); an unaligned `first` (a data-parallel rank's rows) takes its head, fewer than 64
// elements, one element at a time.
void apply_mask(int64_t n, float rate, uint64_t seed, uint64_t stream_id, uint64_t first,
                const float* x, float* y) {
  if (rate <= 0.0f) {  // every uniform is >= 0: all kept, scale 1
    if (x != y) std::memmove(y, x, sizeof(float) * size_t(n));
    return;
  }
  const float scale = 1.0f / (1.0f - rate);
  const int64_t head = std::min<int64_t>(n, int64_t((64 - first % 64) % 64));
  for (int64_t i = 0; i < head; ++i) {
    y[i] = philox_uniform_at(seed, stream_id, first + uint64_t(i)) >= rate ? x[i] * scale : 0.0f;
  }
  n -= head;
  x += head;
  y += head;
  const uint64_t first_block = (first + uint64_t(head)) / 64;  // exact: aligned after the head
#if defined(__AVX512F__) && defined(__BMI2__)
  const double t = std::ceil(double(rate) * 16777216.0);
  if (t < 16777216.0) {
    apply_mask_avx512(n, uint32_t(t) << 8, scale, seed, stream_id, first_block, x, y);
    return;
  }
#endif
  constexpr int64_t kPerBlock = 4 * kLanes;
  const int64_t blocks = (n + kPerBlock - 1) / kPerBlock;
#pragma omp parallel for schedule(static) if (n >= detail::kMinParallelElements)
  for (int64_t b = 0; b < blocks; ++b) {
    PhiloxBlock r;
    philox_lanes((first_block + uint64_t(b)) * kLanes, stream_id, seed, &r);
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

void dropout_forward(int64_t n, float rate, uint64_t seed, uint64_t stream_id, uint64_t first,
                     const float* x, float* y) {
  apply_mask(n, rate, seed, stream_id, first, x, y);
}

void dropout_backward(int64_t n, float rate, uint64_t seed, uint64_t stream_id, uint64_t first,
                      const float* dy, float* dx) {
  apply_mask(n, rate, seed, stream_id, first, dy, dx);
}

}  // namespace fer::kernels::cpu
